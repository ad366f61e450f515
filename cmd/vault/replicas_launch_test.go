package main

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/jupyterhealth/vault/carereport"
)

// SMART EHR launch ids across replicas: the id "Open in app" makes is
// sealed under the master keyset and spent through a table
// (oauth/launch.go), so no replica needs to have made it.

// routeEHR sends each part of an EHR launch to its own replica: "Open in
// app" (the launch id made) to open, the app's authorization request (the
// id checked) to authorize, the consent page and its answer (the id
// spent) to approve, and the app's launch, callback and report to app
// (-1: round robin). Everything else goes round robin.
func (rs *replicaSet) routeEHR(open, authorize, approve, app int) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.route = func(path string) int {
		switch {
		case strings.HasPrefix(path, "/patients/") && strings.HasSuffix(path, "/launch"):
			return open
		case path == "/fhir/auth/authorize":
			return authorize
		case path == "/oauth/authorize" || strings.HasPrefix(path, "/oauth/authorize/"):
			return approve
		case strings.HasPrefix(path, carereport.Path):
			return app
		}
		return -1
	}
	rs.served = nil
}

// servedBy returns the replicas that answered the requests match picks,
// as the proxy recorded them.
func (rs *replicaSet) servedBy(match func(method, path string) bool) []string {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	var out []string
	for _, s := range rs.served {
		f := strings.Fields(s)
		if match(f[0], f[1]) && !slices.Contains(out, f[2]) {
			out = append(out, f[2])
		}
	}
	return out
}

// TestReplicasEHRLaunch: a clinician's "Open in app" for the care report
// is made on one replica, the app's authorization request naming the
// launch id is checked on a second and her approval, which spends it, is
// on the third, in each of three orders, and the report shows the
// patient's readings. The spent id is then refused on every replica
// (invalid_request, back to the app before anyone is asked). On a vault
// that keeps launch ids in the memory of the replica that made them, the
// authorization request on the second replica is refused ("launch is
// unknown").
func TestReplicasEHRLaunch(t *testing.T) {
	f := newCareReportFixture(t)
	for _, order := range [][3]int{{0, 1, 2}, {1, 2, 0}, {2, 0, 1}} {
		f.rs.routeEHR(order[0], order[1], order[2], order[1])
		delete(f.b.cookies, "care_report_session")
		s := careReportSignIn(t, f.b, f.patient, f.client)
		f.checkReport(t, fmt.Sprintf("order %v", order), s, order[1], order[1], order[1])
		for _, part := range []struct {
			what  string
			match func(method, path string) bool
			want  int
		}{
			{"Open in app", func(m, p string) bool {
				return m == "POST" && strings.HasPrefix(p, "/patients/") && strings.HasSuffix(p, "/launch")
			}, order[0]},
			{"the authorization request", func(_, p string) bool { return p == "/fhir/auth/authorize" }, order[1]},
			{"the consent page and approval", func(_, p string) bool {
				return p == "/oauth/authorize" || strings.HasPrefix(p, "/oauth/authorize/")
			}, order[2]},
		} {
			if got, want := f.rs.servedBy(part.match), []string{strconv.Itoa(part.want)}; !slices.Equal(got, want) {
				t.Fatalf("order %v: %s served by replicas %q, want %q", order, part.what, got, want)
			}
		}

		// The app's authorization request with the spent id, again, on
		// every replica.
		authz, err := url.Parse(s.launch.location)
		if err != nil || authz.Path != "/fhir/auth/authorize" || !strings.HasPrefix(authz.Query().Get("launch"), "vl_") {
			t.Fatalf("order %v: the app sent the browser to %q (%v), want the authorize endpoint with a launch id", order, s.launch.location, err)
		}
		for i := range f.rs.reps {
			f.rs.routeEHR(-1, i, -1, -1)
			h := f.b.send("GET", s.launch.location, nil)
			back, err := url.Parse(h.location)
			if err != nil {
				t.Fatal(err)
			}
			if (h.status != http.StatusFound && h.status != http.StatusSeeOther) || h.replica != strconv.Itoa(i) ||
				back.Path != carereport.Path+"callback" || back.Query().Get("error") != "invalid_request" || back.Query().Get("code") != "" {
				t.Fatalf("order %v: the spent launch id on replica %d: %d from replica %s to %s, want invalid_request back to the app", order, i, h.status, h.replica, h.location)
			}
		}
	}
}
