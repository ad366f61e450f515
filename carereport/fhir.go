package carereport

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/jupyterhealth/vault/report"
	"github.com/jupyterhealth/vault/stats"
)

// maxBody bounds one FHIR answer the app reads (a page of 1,000
// Observations is about 1 MB).
const maxBody = 16 << 20

// fhirError is the FHIR API's refusal (an OperationOutcome with its
// status), shown to the user as it is.
type fhirError struct {
	Status      int
	Diagnostics string
}

func (e *fhirError) Error() string { return fmt.Sprintf("FHIR %d: %s", e.Status, e.Diagnostics) }

func (e *fhirError) status() int {
	if e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden || e.Status == http.StatusNotFound {
		return e.Status
	}
	return http.StatusBadGateway
}

func (e *fhirError) code() string {
	switch e.Status {
	case http.StatusUnauthorized:
		return "token_expired"
	case http.StatusForbidden:
		return "fhir_forbidden"
	case http.StatusNotFound:
		return "fhir_not_found"
	}
	return "fhir_error"
}

func (e *fhirError) message() string {
	switch e.Status {
	case http.StatusUnauthorized:
		return "Your access to this report has ended (the token expired or was revoked). Open the app again."
	case http.StatusForbidden:
		return "The patient's consent does not let you read this: " + e.Diagnostics
	}
	return "The vault's FHIR API refused the read: " + e.Diagnostics
}

// get reads one FHIR JSON answer from a URL under the issuer.
func (a *App) get(ctx context.Context, s *appSession, u string, v any) error {
	if !strings.HasPrefix(u, a.issuer+"/") {
		return fmt.Errorf("the FHIR API linked outside its base: %.80s", u)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/fhir+json")
	req.Header.Set("Authorization", "Bearer "+s.Token.AccessToken)
	resp, err := a.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return err
	}
	if len(body) > maxBody {
		return fmt.Errorf("a FHIR answer larger than %d bytes", maxBody)
	}
	if resp.StatusCode != http.StatusOK {
		var oo struct {
			Issue []struct {
				Diagnostics string `json:"diagnostics"`
			} `json:"issue"`
		}
		fe := &fhirError{Status: resp.StatusCode, Diagnostics: http.StatusText(resp.StatusCode)}
		if json.Unmarshal(body, &oo) == nil && len(oo.Issue) > 0 && oo.Issue[0].Diagnostics != "" {
			fe.Diagnostics = oo.Issue[0].Diagnostics
		}
		return fe
	}
	return json.Unmarshal(body, v)
}

type humanName struct {
	Text   string   `json:"text"`
	Family string   `json:"family"`
	Given  []string `json:"given"`
}

type observation struct {
	ResourceType      string `json:"resourceType"`
	EffectiveDateTime string `json:"effectiveDateTime"`
	ValueQuantity     *struct {
		Value float64 `json:"value"`
		Code  string  `json:"code"`
	} `json:"valueQuantity"`
}

type bundle struct {
	Link []struct {
		Relation string `json:"relation"`
		URL      string `json:"url"`
	} `json:"link"`
	Entry []struct {
		Resource observation `json:"resource"`
	} `json:"entry"`
}

// reportView is the report page's.
type reportView struct {
	Name, ID  string
	Banner    bool
	AGP       report.AGP
	Readings  int
	Pages     int
	Scope     string
	Generated string
}

// buildReport reads the patient and her glucose of the last ReportDays
// through the FHIR API (every page) and lays out the AGP.
func (a *App) buildReport(ctx context.Context, s *appSession) (*reportView, error) {
	var pt struct {
		Name []humanName `json:"name"`
	}
	if err := a.get(ctx, s, a.issuer+"/Patient/"+url.PathEscape(s.Patient), &pt); err != nil {
		return nil, err
	}
	rv := &reportView{ID: s.Patient, Name: s.Patient, Banner: s.Banner, Scope: s.Scope}
	if len(pt.Name) > 0 {
		n := pt.Name[0]
		rv.Name = strings.TrimSpace(n.Text)
		if rv.Name == "" {
			rv.Name = strings.TrimSpace(strings.Join(append(slices.Clone(n.Given), n.Family), " "))
		}
	}
	to := a.now().UTC().Truncate(time.Minute).Add(time.Minute)
	from := to.AddDate(0, 0, -ReportDays)
	q := url.Values{"patient": {s.Patient}, "category": {glucoseCategory}, "date": {"ge" + from.Format(time.RFC3339)},
		"_count": {fmt.Sprint(pageSize)}, "_sort": {"date"}}
	next := a.issuer + "/Observation?" + q.Encode()
	var pts []stats.Point
	loc := time.UTC
	for next != "" {
		if rv.Pages == MaxPages {
			return nil, fmt.Errorf("more than %d pages of glucose readings", MaxPages)
		}
		var b bundle
		if err := a.get(ctx, s, next, &b); err != nil {
			return nil, err
		}
		rv.Pages++
		next = ""
		for _, l := range b.Link {
			if l.Relation == "next" {
				next = l.URL
			}
		}
		for _, e := range b.Entry {
			p, zone, ok := glucosePoint(e.Resource)
			if !ok {
				continue
			}
			pts = append(pts, p)
			loc = zone
		}
		if len(pts) > MaxReadings {
			return nil, errors.New("too many glucose readings for one report")
		}
	}
	slices.SortStableFunc(pts, func(x, y stats.Point) int { return x.Time.Compare(y.Time) })
	rv.Readings = len(pts)
	rv.AGP = report.Build(stats.NewAGP(pts, from, to, to.Sub(from), loc), loc)
	rv.Generated = a.now().In(loc).Format("2 Jan 2006 15:04 MST")
	return rv, nil
}

// glucosePoint reads a glucose Observation as mg/dL at its time, with the
// zone its time was written in (the patient's, as the vault stores it).
func glucosePoint(o observation) (stats.Point, *time.Location, bool) {
	if o.ResourceType != "Observation" || o.ValueQuantity == nil || o.EffectiveDateTime == "" {
		return stats.Point{}, nil, false
	}
	t, err := time.Parse(time.RFC3339Nano, o.EffectiveDateTime)
	if err != nil {
		return stats.Point{}, nil, false
	}
	v := o.ValueQuantity.Value
	switch o.ValueQuantity.Code {
	case "mg/dL":
	case "mmol/L":
		v *= stats.MgDLPerMmolL
	default:
		return stats.Point{}, nil, false
	}
	return stats.Point{Time: t, Value: v}, t.Location(), true
}
