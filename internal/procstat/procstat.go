// Package procstat reads this process's memory figures from
// /proc/self/status, for the benchmarks that report what a parse, an import
// or an export costs in memory.
package procstat

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// KB returns a kB field of /proc/self/status, such as "VmRSS", "VmHWM"
// or "RssAnon"; 0 where there is none, as off Linux.
func KB(field string) uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return n
		}
	}
	return 0
}
