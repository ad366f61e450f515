package procstat

import (
	"os"
	"runtime"
	"testing"
)

func TestKB(t *testing.T) {
	if runtime.GOOS != "linux" {
		if KB("VmRSS") != 0 {
			t.Fatal("a figure off Linux")
		}
		return
	}
	rss, peak := KB("VmRSS"), KB("VmHWM")
	if rss == 0 || peak < rss || KB("RssAnon") == 0 || KB("RssAnon") > rss {
		t.Errorf("VmRSS %d kB, VmHWM %d kB, RssAnon %d kB", rss, peak, KB("RssAnon"))
	}
	if KB("NoSuchField") != 0 {
		t.Error("a figure for a field that does not exist")
	}
}

func TestPidKB(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("no /proc")
	}
	if got := PidKB(os.Getpid(), "RssAnon"); got == 0 {
		t.Error("no RssAnon for this process by its pid")
	}
	if PidKB(-1, "RssAnon") != 0 {
		t.Error("a figure for a process that does not exist")
	}
}
