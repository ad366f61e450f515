// Package procstat reads memory figures from /proc/PID/status, for the
// benchmarks that report what a parse, an import or an export costs in
// memory, in this process or in a server they started.
package procstat

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// KB returns a kB field of /proc/self/status, such as "VmRSS", "VmHWM"
// or "RssAnon"; 0 where there is none, as off Linux.
func KB(field string) uint64 { return read("/proc/self/status", field) }

// PidKB is [KB] for the process pid, such as a server a bench started.
func PidKB(pid int, field string) uint64 {
	return read(fmt.Sprintf("/proc/%d/status", pid), field)
}

func read(path, field string) uint64 {
	f, err := os.Open(path)
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
