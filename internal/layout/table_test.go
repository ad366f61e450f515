package layout

import (
	"bufio"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/jupyterhealth/vault"

// projectImports returns, for every package directory of the module (one
// with a non-test .go file), the project packages its non-test files
// import, as module-relative paths.
func projectImports(t *testing.T, root string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		rel, err := filepath.Rel(root, filepath.Dir(path))
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		imps := out[rel]
		if imps == nil {
			imps = []string{}
		}
		for _, imp := range f.Imports {
			p, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				return err
			}
			if own, ok := strings.CutPrefix(p, module+"/"); ok && !slices.Contains(imps, own) {
				imps = append(imps, own)
			}
		}
		out[rel] = imps
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, imps := range out {
		slices.Sort(imps)
	}
	return out
}

var backticked = regexp.MustCompile("`([^`]+)`")

// documentedImports reads the package table of docs/architecture.md: a
// row names one or more packages in its first cell and the project packages
// they import in its last ("none" for none). The table ends at the next
// heading.
func documentedImports(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "## Packages":
			in = true
			continue
		case in && strings.HasPrefix(line, "#"):
			in = false
		}
		if !in || !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) < 3 {
			t.Fatalf("architecture.md: a package row with %d cells: %s", len(cells), line)
		}
		last := strings.TrimSpace(cells[len(cells)-1])
		imps := []string{}
		if last != "none" {
			for _, m := range backticked.FindAllStringSubmatch(last, -1) {
				imps = append(imps, m[1])
			}
			if len(imps) == 0 {
				t.Fatalf("architecture.md: the imports cell of %q names no package (write \"none\" for none)", cells[0])
			}
		}
		slices.Sort(imps)
		for _, m := range backticked.FindAllStringSubmatch(cells[0], -1) {
			out[m[1]] = imps
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatal("architecture.md: no package table under \"## Packages\"")
	}
	return out
}

// TestArchitectureTable keeps docs/architecture.md's package table true:
// every package is in it, with exactly the project packages it imports.
func TestArchitectureTable(t *testing.T) {
	root := moduleRoot(t)
	code := projectImports(t, root)
	doc := documentedImports(t, filepath.Join(root, "docs", "architecture.md"))
	for pkg, imps := range code {
		want, ok := doc[pkg]
		if !ok {
			if pkg != "." {
				t.Errorf("docs/architecture.md: package %s is missing from the package table (it imports %v)", pkg, imps)
			}
			continue
		}
		if !slices.Equal(want, imps) {
			t.Errorf("docs/architecture.md: %s imports %v, the table says %v", pkg, imps, want)
		}
	}
	for pkg := range doc {
		if _, ok := code[pkg]; !ok {
			t.Errorf("docs/architecture.md: the table lists %s, which is not a package", pkg)
		}
	}
}
