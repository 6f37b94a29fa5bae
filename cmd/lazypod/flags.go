package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/lazypod/lazypod/internal/spec"
)

// errUsage marks errors in what the user typed: the CLI exits 2 for them.
var errUsage = spec.ErrUsage

// usagef is a one-line complaint about what the user typed, naming the
// value and how to fix it.
var usagef = spec.Usagef

// newFlagSet returns the flags of command name, which print nothing until
// parseFlags is asked for help.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// parseFlags parses args; --help prints usage and the flags and returns
// flag.ErrHelp.
func parseFlags(fs *flag.FlagSet, args []string, usage string, stderr io.Writer) error {
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stderr, usage)
		fs.SetOutput(stderr)
		fs.PrintDefaults()
		return err
	}
	if err != nil {
		return usagef("%s: see lazypod %s --help", spec.OneLine(err.Error()), fs.Name())
	}
	return nil
}

// flagError is a bad value of flag name, as lazypod words it; nil if err
// is nil.
func flagError(name, value string, err error) error {
	if err == nil {
		return nil
	}
	return &spec.FlagError{Flag: name, Value: value, Err: err}
}

// checkServiceNames checks names given as arguments.
func checkServiceNames(names []string) error {
	for _, n := range names {
		if err := spec.CheckName(n); err != nil {
			return usagef("invalid service name %q: %v", n, err)
		}
	}
	return nil
}

// checkPodmanURL checks a --podman-url given to an admin command.
func checkPodmanURL(s string) error {
	if s == "" {
		return nil
	}
	if err := spec.CheckPodmanURL(s); err != nil {
		return usagef("invalid --podman-url %q: %v", s, err)
	}
	return nil
}
