package layout

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// bboltOutsideBackend is the layering rule of docs/architecture.md: only the
// bbolt backend (store/boltstore and below) imports go.etcd.io/bbolt. The
// one exception is a benchmark's raw-bbolt baseline, listed by file with the
// reason, so a new use is a decision someone has to write down here.
var bboltBaselines = map[string]string{
	"internal/bench/baseline.go": "vault bench's raw-bbolt baselines (puts and reads of the same bytes)",
	"api/export_bench_test.go":   "BenchmarkExport's raw-bbolt read baseline",
}

// bboltImporters returns the module's Go files, relative to root, that
// import bbolt outside store/boltstore and the listed baselines.
func bboltImporters(t *testing.T, root string, allowed map[string]string) []string {
	t.Helper()
	var bad []string
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(rel, ".go") || rel == "store/boltstore" || strings.HasPrefix(rel, "store/boltstore/") {
			return nil
		}
		if _, ok := allowed[rel]; ok {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			p, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				return err
			}
			if p == "go.etcd.io/bbolt" || strings.HasPrefix(p, "go.etcd.io/bbolt/") {
				bad = append(bad, rel)
				break
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(bad)
	return bad
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// TestOnlyTheBackendImportsBbolt enforces the layering: consent, web, api,
// cmd/vault and every other package reach storage through the store
// interfaces, never through bbolt.
func TestOnlyTheBackendImportsBbolt(t *testing.T) {
	root := moduleRoot(t)
	for rel := range bboltBaselines {
		if _, err := os.Stat(filepath.Join(root, rel)); err != nil {
			t.Errorf("allowed baseline %s: %v (remove it from the list)", rel, err)
		}
	}
	if bad := bboltImporters(t, root, bboltBaselines); len(bad) > 0 {
		t.Fatalf("these files import go.etcd.io/bbolt outside store/boltstore; reach storage through vault.Backend, consent.Store or web.Store instead:\n%s", strings.Join(bad, "\n"))
	}
}

// TestImportRuleCatchesAViolation proves the check above can fail: a
// package outside the backend that imports bbolt (plainly, under an alias,
// or a sub-package) is reported, and the backend's own files are not.
func TestImportRuleCatchesAViolation(t *testing.T) {
	root := t.TempDir()
	files := map[string]string{
		"go.mod":                     "module example\n",
		"store/boltstore/ok.go":      "package boltstore\nimport bolt \"go.etcd.io/bbolt\"\nvar _ = bolt.Open\n",
		"store/boltstore/sub/ok.go":  "package sub\nimport \"go.etcd.io/bbolt\"\nvar _ = bbolt.Open\n",
		"consent/bad.go":             "package consent\nimport bolt \"go.etcd.io/bbolt\"\nvar _ = bolt.Open\n",
		"web/bad_test.go":            "package web\nimport \"go.etcd.io/bbolt/errors\"\nvar _ = errors.ErrTimeout\n",
		"api/fine.go":                "package api\nimport \"fmt\"\nvar _ = fmt.Sprint\n",
		"bench/baseline.go":          "package bench\nimport \"go.etcd.io/bbolt\"\nvar _ = bbolt.Open\n",
		"store/boltstorex/sneaky.go": "package boltstorex\nimport \"go.etcd.io/bbolt\"\nvar _ = bbolt.Open\n",
	}
	for name, body := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got := bboltImporters(t, root, map[string]string{"bench/baseline.go": "a baseline"})
	want := []string{"consent/bad.go", "store/boltstorex/sneaky.go", "web/bad_test.go"}
	if !slices.Equal(got, want) {
		t.Fatalf("reported %q, want %q", got, want)
	}
}
