package window_test

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// A small datadriven runner in the style of pebble's (STYLE §23), kept in
// the package so it adds no module dependency. A script is a sequence of
// cases:
//
//	# comments and blank lines
//	command arg key=value
//	optional input lines
//	----
//	expected output lines
//
// followed by a blank line. Run with -rewrite to regenerate expectations
// (from the heap backend; the pebble run must then agree).

var rewrite = flag.Bool("rewrite", false, "rewrite testdata expectations with actual output")

type ddCase struct {
	pre      string // comments and blank lines before the case
	line     int
	cmd      string
	args     []string
	input    []string
	expected string
}

// arg returns the value of key=value in args, or def.
func (c *ddCase) arg(key, def string) string {
	for _, a := range c.args {
		if k, v, ok := strings.Cut(a, "="); ok && k == key {
			return v
		}
	}
	return def
}

// positional returns args without key=value ones.
func (c *ddCase) positional() []string {
	var out []string
	for _, a := range c.args {
		if !strings.Contains(a, "=") {
			out = append(out, a)
		}
	}
	return out
}

func parseScript(t *testing.T, path string) (cases []*ddCase, trailer string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	var pre strings.Builder
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if strings.TrimSpace(l) == "" || strings.HasPrefix(l, "#") {
			pre.WriteString(l + "\n")
			continue
		}
		c := &ddCase{pre: pre.String(), line: i + 1}
		pre.Reset()
		f := strings.Fields(l)
		c.cmd, c.args = f[0], f[1:]
		for i++; i < len(lines) && lines[i] != "----"; i++ {
			c.input = append(c.input, lines[i])
		}
		if i == len(lines) {
			t.Fatalf("%s:%d: case without ----", path, c.line)
		}
		var exp []string
		for i++; i < len(lines) && lines[i] != ""; i++ {
			exp = append(exp, lines[i])
		}
		c.expected = strings.Join(exp, "\n")
		cases = append(cases, c)
		if i < len(lines) {
			i-- // the blank line goes to the next case's pre
		}
	}
	return cases, pre.String()
}

// runScript runs every case of path through do, in order; with rewrite
// set it writes the outputs back as the new expectations.
func runScript(t *testing.T, path string, write bool, do func(t *testing.T, c *ddCase) string) {
	t.Helper()
	cases, trailer := parseScript(t, path)
	var out strings.Builder
	for _, c := range cases {
		got := strings.TrimRight(do(t, c), "\n")
		if write {
			out.WriteString(c.pre)
			out.WriteString(strings.Join(append([]string{c.cmd}, c.args...), " ") + "\n")
			for _, in := range c.input {
				out.WriteString(in + "\n")
			}
			out.WriteString("----\n")
			if got != "" {
				out.WriteString(got + "\n")
			}
			continue
		}
		if got != c.expected {
			t.Errorf("%s:%d: %s %s\ngot:\n%s\nwant:\n%s", path, c.line, c.cmd, strings.Join(c.args, " "), got, c.expected)
		}
	}
	if write {
		out.WriteString(strings.TrimSuffix(trailer, "\n"))
		if err := os.WriteFile(path, []byte(strings.TrimRight(out.String(), "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// scripts returns the testdata scripts.
func scripts(t *testing.T) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "*"))
	if err != nil {
		t.Fatal(err)
	}
	// Directories (testdata/fuzz, the fuzz corpus) are not scripts.
	paths = slices.DeleteFunc(paths, func(p string) bool {
		fi, err := os.Stat(p)
		return err != nil || fi.IsDir()
	})
	if len(paths) == 0 {
		t.Fatal("no testdata scripts")
	}
	return paths
}
