package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"filippo.io/age"
	"filippo.io/age/armor"
)

// cmdDecrypt opens an export: vault decrypt -i IDENTITY [-o OUT] [FILE].
// It reads X25519 (AGE-SECRET-KEY-1…) and hybrid post-quantum
// (AGE-SECRET-KEY-PQ-1…) identities, which Debian's age 1.1 cannot.
func cmdDecrypt(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("decrypt", stderr)
	idPath := fs.String("i", "", "identity file (age-keygen format)")
	outPath := fs.String("o", "", "write the plaintext here instead of standard output")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if *idPath == "" || fs.NArg() > 1 {
		fmt.Fprintln(stderr, "usage: vault decrypt -i IDENTITY [-o OUT] [FILE]")
		return errUsage
	}
	idf, err := os.Open(*idPath)
	if err != nil {
		return fmt.Errorf("identity: %v", err)
	}
	ids, err := age.ParseIdentities(idf)
	idf.Close()
	if err != nil {
		return fmt.Errorf("identity file %s: %v", *idPath, err)
	}
	in := stdin
	if fs.NArg() == 1 && fs.Arg(0) != "-" {
		f, err := os.Open(fs.Arg(0))
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	br := bufio.NewReader(in)
	var src io.Reader = br
	if head, _ := br.Peek(len(armor.Header)); bytes.Equal(head, []byte(armor.Header)) {
		src = armor.NewReader(br)
	}
	r, err := age.Decrypt(src, ids...)
	var nm *age.NoIdentityMatchError
	if errors.As(err, &nm) {
		return errors.New("no identity in the file can open this export: was it encrypted to another key?")
	}
	if err != nil {
		return fmt.Errorf("not a valid age file: %v", err)
	}
	var out io.Writer = stdout
	var outFile *os.File
	if *outPath != "" {
		if outFile, err = os.OpenFile(*outPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600); err != nil {
			return err
		}
		out = outFile
	}
	_, err = io.Copy(out, r)
	if outFile != nil {
		if cerr := outFile.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(*outPath)
		}
	}
	if err != nil {
		return fmt.Errorf("decryption failed part-way (the file is damaged or was altered): %v", err)
	}
	return nil
}
