package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jupyterhealth/vault/internal/ratelimit"
)

// Configuration: every flag of every command can also be set in the
// environment, as VAULT_ and the flag's name in capitals with - as _
// (--base-url is VAULT_BASE_URL). A flag on the command line wins over the
// environment, which wins over the default. A secret setting is never a
// flag (a flag shows in ps); it comes from its variable or from a file
// named by the variable with _FILE, and 'vault config' shows only whether
// it is set.

// envName is the environment variable of a flag.
func envName(flagName string) string {
	return "VAULT_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// secrets are the settings that come only from the environment.
var secrets = []struct{ env, what string }{
	{"VAULT_ROOT_PASSPHRASE", "the root passphrase, instead of a root key file"},
	{"VAULT_DATABASE_URL", "a PostgreSQL connection string, instead of bbolt in --data (serve's --database)"},
}

// isSetting reports whether a flag is a setting (serve's flags and the
// store flags every command shares), which the environment can set. Flags
// that name what one command acts on (--out, --patient, -i) are not.
func isSetting(name string) bool {
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	registerServe(fs)
	return fs.Lookup(name) != nil
}

// applyEnv sets each setting not given on the command line from its
// variable.
// A bad value names the variable.
func applyEnv(fs *flag.FlagSet) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || !isSetting(f.Name) {
			return
		}
		v, ok := os.LookupEnv(envName(f.Name))
		if !ok || v == "" {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %v", envName(f.Name), err))
		}
	})
	return errors.Join(errs...)
}

// source says where a flag's value came from.
func source(fs *flag.FlagSet, name string, given map[string]bool) string {
	switch {
	case given[name]:
		return "flag --" + name
	case os.Getenv(envName(name)) != "":
		return "env " + envName(name)
	}
	return "default"
}

// checkSecrets refuses a secret set both ways.
func checkSecrets() error {
	for _, s := range secrets {
		if os.Getenv(s.env) != "" && os.Getenv(s.env+"_FILE") != "" {
			return fmt.Errorf("both %s and %s_FILE are set; keep one", s.env, s.env)
		}
	}
	return nil
}

// checkServe rejects bad combinations of serve's settings before anything
// starts.
func checkServe(fs *flag.FlagSet) error {
	var errs []error
	get := func(name string) string { return fs.Lookup(name).Value.String() }
	if err := checkSecrets(); err != nil {
		errs = append(errs, err)
	}
	if _, _, err := net.SplitHostPort(get("addr")); err != nil {
		errs = append(errs, fmt.Errorf("--addr must be HOST:PORT, such as 127.0.0.1:8080"))
	} else if _, err := resolveBaseURL(get("addr"), get("base-url")); err != nil {
		errs = append(errs, err)
	}
	if err := listenSettings(fs).check(get("addr")); err != nil {
		errs = append(errs, err)
	}
	if _, err := newLogger(io.Discard, get("log-level")); err != nil {
		errs = append(errs, err)
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	demo := get("demo") == "true"
	if !demo && (given["demo-days"] || os.Getenv(envName("demo-days")) != "") {
		errs = append(errs, errors.New("--demo-days applies only with --demo"))
	}
	if _, err := ratelimit.ParsePrefixes(get("trusted-proxies")); err != nil {
		errs = append(errs, fmt.Errorf("--trusted-proxies must be comma-separated CIDR ranges, such as 10.0.0.0/8,::1/128: %v", err))
	}
	if d, err := time.ParseDuration(get("scrub-interval")); err == nil && d < 0 {
		errs = append(errs, errors.New("--scrub-interval must be 0 (off) or a positive duration, such as 24h"))
	}
	if err := checkTLS(get("tls-cert"), get("tls-key"), get("base-url")); err != nil {
		errs = append(errs, err)
	}
	keyFileSet := given["root-key-file"] || os.Getenv(envName("root-key-file")) != ""
	if keyFileSet && (os.Getenv("VAULT_ROOT_PASSPHRASE") != "" || os.Getenv("VAULT_ROOT_PASSPHRASE_FILE") != "") {
		errs = append(errs, errors.New("both a root key file and a root passphrase are set; a vault is sealed with one of them"))
	}
	return errors.Join(errs...)
}

// serveFlags declares serve's flags; cmdServe and cmdConfig share them.
type serveFlags struct {
	store    storeFlags
	listen   listenFlags
	addr     *string
	baseURL  *string
	demo     *bool
	demoDays *int
	logLevel *string
	keyDelay *time.Duration
}

// cmdConfig prints the settings serve would run with, where each came
// from, and whether they are valid. Secrets show only as set or not.
func cmdConfig(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("config", stderr)
	registerServe(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	// What the command line gave, apart from the environment.
	given := map[string]bool{}
	cl := flag.NewFlagSet("", flag.ContinueOnError)
	cl.SetOutput(io.Discard)
	registerServe(cl)
	cl.Parse(args)
	cl.Visit(func(f *flag.Flag) { given[f.Name] = true })
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SETTING\tENV\tVALUE\tFROM")
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(tw, "--%s\t%s\t%s\t%s\n", n, envName(n), fs.Lookup(n).Value.String(), source(fs, n, given))
	}
	for _, s := range secrets {
		state, from := "not set", "-"
		switch {
		case os.Getenv(s.env) != "":
			state, from = "set (redacted)", "env "+s.env
		case os.Getenv(s.env+"_FILE") != "":
			state, from = "set (redacted), from the file "+os.Getenv(s.env+"_FILE"), "env "+s.env+"_FILE"
		}
		fmt.Fprintf(tw, "(secret)\t%s\t%s\t%s\n", s.env, state, from)
	}
	tw.Flush()
	if b := fs.Lookup("base-url").Value.String(); b != "" {
		fmt.Fprintf(stdout, "\nbase URL: %s (from --base-url)\n", b)
	} else if u, err := resolveBaseURL(fs.Lookup("addr").Value.String(), ""); err == nil {
		fmt.Fprintf(stdout, "\nbase URL: %s (derived from --addr; set --base-url for any other)\n", u)
	}
	if err := checkServe(fs); err != nil {
		fmt.Fprintf(stdout, "\ninvalid: %v\n", err)
		return errors.New("the configuration is not valid")
	}
	fmt.Fprintln(stdout, "\nvalid")
	return nil
}

// checkTLS wants --tls-cert and --tls-key both or neither; when both, the
// pair must load and the base URL be https (browsers reach the vault over
// TLS, so the passkey origin is https).
func checkTLS(cert, key, baseURL string) error {
	switch {
	case cert == "" && key == "":
		return nil
	case cert == "" || key == "":
		return errors.New("--tls-cert and --tls-key go together: set both to serve HTTPS, or neither")
	}
	if _, err := tls.LoadX509KeyPair(cert, key); err != nil {
		return fmt.Errorf("--tls-cert and --tls-key do not load as a certificate and its key: %v", err)
	}
	if !strings.HasPrefix(baseURL, "https://") {
		return errors.New("--tls-cert serves HTTPS, so --base-url must be the https URL browsers use")
	}
	return nil
}
