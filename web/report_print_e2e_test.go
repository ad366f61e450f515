package web

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// pdfPages counts the page objects of a PDF: "/Type /Page" dictionaries
// (not "/Type /Pages", the tree's nodes). Chromium writes page
// dictionaries uncompressed; a PDF with none is refused, so a change to
// that fails the test rather than passing it.
func pdfPages(t *testing.T, pdf []byte) int {
	t.Helper()
	n := len(regexp.MustCompile(`/Type\s*/Page\b[^s]`).FindAll(pdf, -1))
	if n == 0 {
		t.Fatalf("no page objects found in a %d-byte PDF", len(pdf))
	}
	return n
}

// TestReportPrintsOnOnePage prints the AGP with Chromium's print-to-PDF,
// on A4 and on Letter, from the patient's dashboard and from the
// clinician's patient page, and checks each is one page. With
// VAULT_SCREENSHOTS=1 it saves the report as it shows on screen (both
// pages) and as it prints (print media emulated, at the printed width),
// in docs/screenshots.
func TestReportPrintsOnOnePage(t *testing.T) {
	ctx := browser(t)
	f := newFixture(t, fixtureOpts{listen: true, days: 14, perMin: 1000})
	f.grantWith(grantOpts{schemas: []string{"omh:blood-glucose", "omh:heart-rate", "omh:step-count"}})
	papers := []struct {
		name          string
		width, height float64 // inches
	}{{"A4", 8.27, 11.69}, {"Letter", 8.5, 11}}
	yes := true
	signInAs := func(t *testing.T, userID string) {
		t.Helper()
		cookie, _ := f.signIn(userID)
		if _, err := chromedp.Call(ctx, network.SetCookie, network.SetCookieParams{Name: SessionCookie, Value: cookie, URL: f.base + "/", Path: "/",
			Secure: &yes, HTTPOnly: &yes, SameSite: network.CookieSameSiteStrict}); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		who, user, path, shot string
	}{
		{"patient", f.patient.ID, "/", "agp-dashboard"},
		{"clinician", f.clin.ID, "/patients/" + f.patient.ID, "agp-clinician"},
	} {
		t.Run(c.who, func(t *testing.T) {
			signInAs(t, c.user)
			run(t, ctx, chromedp.EmulateViewport(1100, 900), chromedp.Navigate(f.base+c.path), chromedp.WaitVisible(chromedp.CSS(".agp-report svg.agp-daily")))
			if os.Getenv("VAULT_SCREENSHOTS") == "1" {
				shot := get(t, ctx, chromedp.Screenshot(chromedp.CSS(".agp-report")))
				if err := os.WriteFile(filepath.Join("..", "docs", "screenshots", c.shot+".png"), shot, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			for _, p := range papers {
				res, err := chromedp.Call(ctx, page.PrintToPDF, page.PrintToPDFParams{PaperWidth: p.width, PaperHeight: p.height, PrintBackground: &yes})
				if err != nil {
					t.Fatalf("print to PDF on %s: %v", p.name, err)
				}
				if n := pdfPages(t, res.Data); n != 1 {
					if os.Getenv("VAULT_SCREENSHOTS") == "1" {
						os.WriteFile(filepath.Join(t.TempDir(), "report.pdf"), res.Data, 0o644)
					}
					t.Errorf("%s prints on %d pages of %s, want 1", c.path, n, p.name)
				}
			}
			if c.who == "clinician" && os.Getenv("VAULT_SCREENSHOTS") == "1" {
				// As printed: print media at A4's printable width (190 mm at 96 px/in).
				if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Media: "print"}); err != nil {
					t.Fatal(err)
				}
				run(t, ctx, chromedp.EmulateViewport(718, 980))
				screenshot(t, ctx, "agp-print")
				if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{}); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
