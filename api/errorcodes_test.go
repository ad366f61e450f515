package api_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// errorCodeDirs are the packages whose errors reach an API client (and the
// admin socket, which answers as the API does): the API's handlers, and the
// vault, consent, OMH and import errors they pass on with their own code.
var errorCodeDirs = []string{"api", "vault", "consent", "omh", "ingest"}

// inputErrorDirs are packages outside those whose *vault.InputError the
// admin socket answers with its own code (the web UI's NewInvite: bad_ttl).
// Only their vault.InputError literals are read: their other codes are the
// web UI's, listed in docs/web.md.
var inputErrorDirs = []string{"web"}

// emittedCodes finds the error codes the Go source under root's dirs (and
// their sub-directories; not tests) can emit, with where each is made. A
// code is a string literal, or a string constant, in one of the constructs
// that make an error with a code:
//
//   - a call to a constructor: a function whose parameter named code is a
//     string and whose result is an ...Error (newError, indexed,
//     consent's badRequest, ingest.Errorf, omh's errf and the like); the
//     code is that argument;
//   - a composite literal of an ...Error type (api.Error, vault.InputError,
//     consent.RequestError, ingest.Error, omh.Error): its Code field, or
//     its first element when the fields are not named.
//
// A code passed through in a variable (re.Code, ie.Code) is not a new one:
// it was made by one of these constructs somewhere.
//
// With onlyInputErrors, only vault.InputError literals count.
func emittedCodes(t *testing.T, root string, dirs []string, onlyInputErrors bool) map[string][]string {
	t.Helper()
	fset := token.NewFileSet()
	var files []*ast.File
	for _, dir := range dirs {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if d.Name() == "testdata" {
					return filepath.SkipDir
				}
				return nil
			}
			if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			f, err := parser.ParseFile(fset, path, nil, 0)
			if err != nil {
				return err
			}
			files = append(files, f)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// The string constants, by package name and name, and the
	// constructors, by package name and name, with the place of their code
	// parameter.
	consts := map[string]string{}
	ctors := map[string]int{}
	for _, f := range files {
		pkg := f.Name.Name
		for _, decl := range f.Decls {
			switch d := decl.(type) {
			case *ast.GenDecl:
				if d.Tok != token.CONST {
					continue
				}
				for _, spec := range d.Specs {
					vs := spec.(*ast.ValueSpec)
					for i, name := range vs.Names {
						if i < len(vs.Values) {
							if s, ok := stringLit(vs.Values[i]); ok {
								consts[pkg+"."+name.Name] = s
							}
						}
					}
				}
			case *ast.FuncDecl:
				if d.Type.Results == nil || len(d.Type.Results.List) != 1 || !strings.HasSuffix(typeName(d.Type.Results.List[0].Type), "Error") {
					continue
				}
				i := 0
				for _, field := range d.Type.Params.List {
					for _, name := range field.Names {
						if name.Name == "code" && typeName(field.Type) == "string" {
							ctors[pkg+"."+d.Name.Name] = i
						}
						i++
					}
				}
			}
		}
	}
	codes := map[string][]string{}
	for _, f := range files {
		pkg := f.Name.Name
		code := func(e ast.Expr) {
			s, ok := stringLit(e)
			if !ok {
				switch x := e.(type) {
				case *ast.Ident:
					s, ok = consts[pkg+"."+x.Name]
				case *ast.SelectorExpr:
					if p, isPkg := x.X.(*ast.Ident); isPkg {
						s, ok = consts[p.Name+"."+x.Sel.Name]
					}
				}
			}
			if ok {
				p := fset.Position(e.Pos())
				rel, err := filepath.Rel(root, p.Filename)
				if err != nil {
					t.Fatal(err)
				}
				codes[s] = append(codes[s], filepath.ToSlash(rel)+":"+strconv.Itoa(p.Line))
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch x := n.(type) {
			case *ast.CallExpr:
				if onlyInputErrors {
					return true
				}
				name := ""
				switch fn := x.Fun.(type) {
				case *ast.Ident:
					name = pkg + "." + fn.Name
				case *ast.SelectorExpr:
					if p, isPkg := fn.X.(*ast.Ident); isPkg {
						name = p.Name + "." + fn.Sel.Name
					}
				}
				if i, ok := ctors[name]; ok && i < len(x.Args) {
					code(x.Args[i])
				}
			case *ast.CompositeLit:
				if !strings.HasSuffix(typeName(x.Type), "Error") || len(x.Elts) == 0 {
					return true
				}
				if sel, ok := x.Type.(*ast.SelectorExpr); onlyInputErrors && (!ok || sel.Sel.Name != "InputError" || typeName(sel.X) != "vault") {
					return true
				}
				if _, keyed := x.Elts[0].(*ast.KeyValueExpr); !keyed {
					code(x.Elts[0])
					return true
				}
				for _, el := range x.Elts {
					if kv := el.(*ast.KeyValueExpr); typeName(kv.Key) == "Code" {
						code(kv.Value)
					}
				}
			}
			return true
		})
	}
	return codes
}

// typeName is the last name of a type expression: Error for *api.Error.
func typeName(e ast.Expr) string {
	switch x := e.(type) {
	case *ast.Ident:
		return x.Name
	case *ast.SelectorExpr:
		return x.Sel.Name
	case *ast.StarExpr:
		return typeName(x.X)
	}
	return ""
}

func stringLit(e ast.Expr) (string, bool) {
	if b, ok := e.(*ast.BasicLit); ok && b.Kind == token.STRING {
		s, err := strconv.Unquote(b.Value)
		return s, err == nil
	}
	return "", false
}

// tableCodes reads the codes in the error-code table of docs/api.md: every
// `code` in the table's Code column.
func tableCodes(t *testing.T, doc string) map[string]bool {
	t.Helper()
	_, section, ok := strings.Cut(doc, "\n## Error codes\n")
	if !ok {
		t.Fatal("docs/api.md has no \"## Error codes\" section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	codes := map[string]bool{}
	tick := regexp.MustCompile("`([a-z0-9_]+)`")
	for line := range strings.Lines(section) {
		cells := strings.Split(line, "|")
		if !strings.HasPrefix(line, "|") || len(cells) < 4 {
			continue
		}
		for _, m := range tick.FindAllStringSubmatch(cells[2], -1) {
			codes[m[1]] = true
		}
	}
	return codes
}

// undocumented is what emitted holds that table lacks, with where each is
// made.
func undocumented(emitted map[string][]string, table map[string]bool) []string {
	var out []string
	for code, at := range emitted {
		if !table[code] {
			out = append(out, code+" ("+strings.Join(at, ", ")+")")
		}
	}
	slices.Sort(out)
	return out
}

// TestErrorCodesDocumented: every error code the API (or the admin socket)
// can answer with is in docs/api.md's error-code table.
func TestErrorCodesDocumented(t *testing.T) {
	root := filepath.Join("..")
	doc, err := os.ReadFile(filepath.Join(root, "docs", "api.md"))
	if err != nil {
		t.Fatal(err)
	}
	emitted := emittedCodes(t, root, errorCodeDirs, false)
	for code, at := range emittedCodes(t, root, inputErrorDirs, true) {
		emitted[code] = append(emitted[code], at...)
	}
	// The scan must see the constructs it is meant to: a code from each.
	for _, c := range []string{"bad_label", "no_user", "bad_role", "invalid_header", "bad_expiry", "bad_csv", "bad_input", "export_rate_limited", "bad_ttl"} {
		if len(emitted[c]) == 0 {
			t.Errorf("the scan does not find %s: a construct that makes error codes is no longer recognised", c)
		}
	}
	if missing := undocumented(emitted, tableCodes(t, string(doc))); len(missing) > 0 {
		t.Fatalf("error codes missing from the error-code table of docs/api.md (add each, with what it means and what to do):\n%s", strings.Join(missing, "\n"))
	}
}

// TestErrorCodeScanCatchesAMissingCode proves the check above can fail: in
// a synthetic tree, a code made by each construct is found, and one the
// table lacks is reported.
func TestErrorCodeScanCatchesAMissingCode(t *testing.T) {
	root := t.TempDir()
	files := map[string]string{
		"api/errors.go": `package api
type Error struct{ Status int; Code, Message string }
func newError(status int, code, format string, args ...any) *Error { return &Error{Status: status, Code: code} }
func lookup(code string) int { return 0 }
func handler() error {
	_ = lookup("not_a_code")
	if true { return newError(400, "from_new_error", "x") }
	return &Error{Status: 503, Code: "from_literal"}
}`,
		"api/errors_test.go": `package api
func x() error { return newError(400, "only_in_a_test", "x") }`,
		"vault/input.go": `package vault
type InputError struct{ Code, Message string }
func f() error { return &InputError{"from_positional", "m"} }`,
		"omh/errors.go": `package omh
const CodeFromConst = "from_const"
type Error struct{ Code, Field, Message string }
func errf(code, field, msg string) *Error { return &Error{Code: code} }
func g() error { return errf(CodeFromConst, "f", "m") }`,
		"ingest/csv/parse.go": `package csv
import "example/ingest"
func h() error { return ingest.Errorf(ingest.Pos{}, "from_sub_package", "m") }
func errf(pos ingest.Pos, code, msg string) *ingest.Error { return ingest.Errorf(pos, code, msg) }
func k() error { return errf(ingest.Pos{}, "from_local_ctor", "m") }`,
		"web/invite.go": `package web
import "example/vault"
type publicError struct{ Code string }
func refuse(status int, code, title, msg string) *publicError { return &publicError{Code: code} }
func i() error { _ = refuse(400, "web_only", "t", "m"); _ = &publicError{Code: "web_only_too"}; return &vault.InputError{Code: "from_web_input_error"} }`,
		"ingest/ingest.go": `package ingest
type Pos struct{}
type Error struct{ Pos Pos; Code, Message string }
func Errorf(pos Pos, code, format string, args ...any) *Error { return &Error{Pos: pos, Code: code} }`,
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
	emitted := emittedCodes(t, root, []string{"api", "vault", "omh", "ingest"}, false)
	if web := emittedCodes(t, root, []string{"web"}, true); len(web) != 1 || len(web["from_web_input_error"]) != 1 {
		t.Fatalf("in web, found %v, want only from_web_input_error", web)
	}
	var got []string
	for c := range emitted {
		got = append(got, c)
	}
	slices.Sort(got)
	want := []string{"from_const", "from_literal", "from_local_ctor", "from_new_error", "from_positional", "from_sub_package"}
	if !slices.Equal(got, want) {
		t.Fatalf("found %q, want %q", got, want)
	}
	doc := "# API\n\n## Error codes\n\n| Status | Code | Meaning |\n|---|---|---|\n" +
		"| 400 | `from_const`, `from_literal`, `from_local_ctor` | x |\n| 400 | `from_new_error` | see `from_positional` |\n| 503 | `from_positional` | y |\n\n## Next\n\n`from_sub_package` is only in prose\n"
	if missing := undocumented(emitted, tableCodes(t, doc)); len(missing) != 1 || !strings.HasPrefix(missing[0], "from_sub_package (ingest/csv/parse.go:3") {
		t.Fatalf("reported %q, want only from_sub_package, with where it is made", missing)
	}
}
