package file

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// List resolves path to the regular files it names, sorted by name: the
// file itself, every regular file directly in a directory, or the regular
// files matching a glob (path/filepath.Match syntax). A path matching
// nothing is ErrNoFiles.
func List(path string) ([]string, error) {
	var names []string
	if strings.ContainsAny(path, `*?[`) {
		m, err := filepath.Glob(path)
		if err != nil {
			return nil, fmt.Errorf("file: glob %q: %w", path, err)
		}
		names = m
	} else {
		fi, err := os.Stat(path)
		if err != nil {
			return nil, fmt.Errorf("file: %w", err)
		}
		if !fi.IsDir() {
			return []string{path}, nil
		}
		entries, err := os.ReadDir(path)
		if err != nil {
			return nil, fmt.Errorf("file: %w", err)
		}
		for _, e := range entries {
			names = append(names, filepath.Join(path, e.Name()))
		}
	}
	files := names[:0]
	for _, n := range names {
		fi, err := os.Stat(n)
		if err != nil {
			return nil, fmt.Errorf("file: %w", err)
		}
		if fi.Mode().IsRegular() {
			files = append(files, n)
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%w %q", ErrNoFiles, path)
	}
	slices.Sort(files)
	return files, nil
}

// Assign returns the files subtask i of p reads: files i, i+p, i+2p, …
// of the sorted list.
func Assign(files []string, subtask, parallelism int) []string {
	var out []string
	for j := subtask; j < len(files); j += parallelism {
		out = append(out, files[j])
	}
	return out
}
