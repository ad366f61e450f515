package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
)

// The Python notebook client (clients/python) and the example notebook
// (notebooks/) run against the shared demo server: the real binary, a real
// Jupyter kernel, Debian's age CLI and Python packages.

const debianPython = "/usr/bin/python3"

// pythonModules are the Debian packages each test needs, by import name.
var pythonModules = map[string]string{
	"requests": "python3-requests", "pandas": "python3-pandas", "cryptography": "python3-cryptography",
	"nbconvert": "python3-nbconvert", "ipykernel": "python3-ipykernel", "matplotlib": "python3-matplotlib",
}

// requirePython skips (or, under CI=true, fails) when Debian's python3 or
// one of the modules is missing, naming the apt-get command that fixes it.
func requirePython(t *testing.T, modules ...string) {
	t.Helper()
	var missing []string
	if _, err := os.Stat(debianPython); err != nil {
		for _, m := range modules {
			missing = append(missing, pythonModules[m])
		}
	} else {
		for _, m := range modules {
			if err := exec.Command(debianPython, "-c", "import "+m).Run(); err != nil {
				missing = append(missing, pythonModules[m])
			}
		}
	}
	if _, err := exec.LookPath("age"); err != nil {
		missing = append(missing, "age")
	}
	if len(missing) == 0 {
		return
	}
	msg := fmt.Sprintf("Debian's %s or its packages are missing; run: apt-get install -y python3 %s", debianPython, strings.Join(missing, " "))
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip("SKIPPING THE PYTHON CLIENT AND NOTEBOOK TESTS: " + msg)
}

// pythonEnv is the environment a hub gives the client: the vault, the
// clinician's token, the hub's identity and the pinned log key (fetched
// out of band with 'vault admin ledger-key', as an operator would), plus
// what the tests need. HOME is fresh, so ~/.jhvault and Jupyter's runtime
// directories start empty.
func pythonEnv(t *testing.T, s *demoServer) []string {
	t.Helper()
	key, stderr, err := runVault(t, 30*time.Second, "admin", "ledger-key", "--data", s.data, "--root-key-file", s.keyFile)
	if err != nil || key == "" {
		t.Fatalf("vault admin ledger-key: %v\n%s", err, stderr)
	}
	credsPath := filepath.Join(s.data, "demo", "credentials.json")
	var raw map[string]any
	if b, err := os.ReadFile(credsPath); err != nil || json.Unmarshal(b, &raw) != nil {
		t.Fatalf("cannot read %s: %v", credsPath, err)
	}
	if k, ok := raw["ledger_verifier_key"].(string); ok && k != key {
		t.Fatalf("credentials.json's ledger_verifier_key %q is not the ledger's key %q", k, key)
	}
	vaultBin, err := exec.LookPath("vault")
	if err != nil {
		t.Fatalf("the test binary is not on PATH as vault: %v", err)
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	env := []string{
		"HOME=" + home,
		"PATH=" + os.Getenv("PATH"),
		"LANG=C.UTF-8",
		"PYTHONPATH=" + filepath.Join(repo, "clients", "python"),
		"PYTHONDONTWRITEBYTECODE=1",        // no __pycache__ in the repository
		"PYDEVD_DISABLE_FILE_VALIDATION=1", // the kernel's debugger warns about frozen modules otherwise
		"MPLBACKEND=Agg",
		"VAULT_URL=" + s.url,
		"VAULT_TOKEN=" + s.creds.ClinicianToken,
		"VAULT_IDENTITY=" + s.creds.ClinicianIdentity,
		"VAULT_LOG_KEY=" + key,
		"VAULT_PATIENT=" + s.creds.PatientID,
		"VAULT_BIN=" + vaultBin,
		"VAULT_CREDENTIALS=" + credsPath,
	}
	if v := os.Getenv("TMPDIR"); v != "" {
		env = append(env, "TMPDIR="+v)
	}
	return env
}

// runPython runs Debian's python3 from the repository root with a deadline
// and returns its combined output; on failure the output goes to the log.
func runPython(t *testing.T, env []string, timeout time.Duration, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, debianPython, args...)
	cmd.Dir = "../.."
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("python3 %s did not finish within %v; output:\n%s", strings.Join(args, " "), timeout, out.String())
	}
	if err != nil {
		t.Fatalf("python3 %s failed (%v) after %v; output:\n%s", strings.Join(args, " "), err, time.Since(start).Round(time.Millisecond), out.String())
	}
	t.Logf("python3 %s: ok in %v", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	return out.String()
}

// pqIdentity writes a fresh hybrid post-quantum age identity, with its
// recipient in a '# public key:' comment, for the client's pq test to
// register and remove.
func pqIdentity(t *testing.T) string {
	t.Helper()
	id, err := age.GenerateHybridIdentity()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "hub-pq.agekey")
	content := fmt.Sprintf("# public key: %s\n%s\n", id.Recipient(), id)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestPythonClient(t *testing.T) {
	requirePython(t, "requests", "pandas", "cryptography")
	s := sharedServer(t)
	env := append(pythonEnv(t, s), "VAULT_PQ_IDENTITY="+pqIdentity(t))
	out := runPython(t, env, 5*time.Minute, "-m", "unittest", "discover", "-v", "-s", "clients/python/tests")
	// The live tests must have run, not skipped for want of a vault.
	if strings.Contains(out, "SKIPPING the live vault tests") || !strings.Contains(out, "test_pq_export_through_vault_decrypt") {
		t.Fatalf("the live tests did not run:\n%s", out)
	}
	// Against the demo vault nothing may be skipped: a skip here means a
	// check went untested.
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "... skipped") {
			t.Errorf("a Python test was skipped against the demo vault: %s", line)
		}
	}
	if testing.Verbose() || t.Failed() {
		t.Log(out)
	}
}

func TestNotebook(t *testing.T) {
	requirePython(t, "requests", "pandas", "cryptography", "nbconvert", "ipykernel", "matplotlib")
	s := sharedServer(t)
	env := pythonEnv(t, s)
	outDir := t.TempDir()
	nb := filepath.Join("notebooks", "clinician-quickstart.ipynb")
	runPython(t, env, 5*time.Minute, "-m", "nbconvert", "--to", "notebook", "--execute",
		"--ExecutePreprocessor.timeout=120", "--output-dir", outDir, nb)

	// nbconvert stops at a cell error; check the executed notebook too.
	b, err := os.ReadFile(filepath.Join(outDir, "clinician-quickstart.ipynb"))
	if err != nil {
		t.Fatal(err)
	}
	var done struct {
		Cells []struct {
			CellType string `json:"cell_type"`
			Outputs  []struct {
				OutputType string         `json:"output_type"`
				Text       any            `json:"text"`
				Data       map[string]any `json:"data"`
				Ename      string         `json:"ename"`
				Evalue     string         `json:"evalue"`
			} `json:"outputs"`
		} `json:"cells"`
	}
	if err := json.Unmarshal(b, &done); err != nil {
		t.Fatalf("executed notebook is not JSON: %v", err)
	}
	var text strings.Builder
	images := 0
	for _, c := range done.Cells {
		for _, o := range c.Outputs {
			if o.OutputType == "error" {
				t.Errorf("cell error: %s: %s", o.Ename, o.Evalue)
			}
			fmt.Fprint(&text, o.Text)
			if p, ok := o.Data["text/plain"]; ok {
				fmt.Fprint(&text, p)
			}
			if _, ok := o.Data["image/png"]; ok {
				images++
			}
		}
	}
	for _, want := range []string{"time in range", "verified against checkpoint", s.creds.PatientID, s.creds.GrantID} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("the executed notebook's output lacks %q", want)
		}
	}
	if images == 0 {
		t.Error("the executed notebook drew no figure")
	}

	// The committed notebook keeps its outputs cleared.
	src, err := os.ReadFile(filepath.Join("..", "..", nb))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(src, []byte(`"output_type"`)) || bytes.Contains(src, []byte(`"execution_count": 1`)) {
		t.Errorf("%s is committed with outputs; clear them", nb)
	}
}
