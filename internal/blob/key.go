package blob

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Key limits. MaxKeyLen is S3's limit on a whole object key; the S3 store
// also checks that its prefix plus the key stays within it. MaxSegmentLen is
// the usual file-name limit (NAME_MAX), so that every key is also a valid
// path for the file store.
const (
	MaxKeyLen     = 1024
	MaxSegmentLen = 255
)

// tmpPrefix starts the names of the file store's temporary files. Keys may
// not use it for any segment, so a temporary file is never mistaken for an
// object and never collides with one.
const tmpPrefix = ".blob-tmp-"

// CheckKey reports whether key is a valid object key, returning a *KeyError
// (wrapping ErrInvalidKey) that names the broken rule if not. A key is a
// slash-separated relative path:
//
//   - not empty, at most MaxKeyLen bytes, valid UTF-8, no control characters;
//   - no leading slash (not absolute), no trailing slash (names an object,
//     not a directory), no backslash;
//   - every segment non-empty (no "//"), not "." or "..", at most
//     MaxSegmentLen bytes, and not starting with ".blob-tmp-" (reserved for
//     the file store's temporary files).
//
// Every Store operation checks its keys this way before any I/O, so a key
// that works on one implementation works on the other.
func CheckKey(key string) error {
	if key == "" {
		return &KeyError{Key: key, Reason: "empty"}
	}
	if strings.HasSuffix(key, "/") {
		return &KeyError{Key: key, Reason: "ends with a slash (a key names an object, not a directory)"}
	}
	return checkPath(key, false)
}

// checkPrefix checks a List prefix: empty (everything), or a key prefix that
// may end with a slash or in the middle of a segment ("jobs/a/chk-").
func checkPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	return checkPath(prefix, true)
}

// checkPath holds the rules CheckKey and checkPrefix share. With partial
// set, the text after the last slash may be an incomplete segment, so only
// the character rules apply to it.
func checkPath(p string, partial bool) error {
	if len(p) > MaxKeyLen {
		return &KeyError{Key: p, Reason: fmt.Sprintf("longer than %d bytes", MaxKeyLen)}
	}
	if !utf8.ValidString(p) {
		return &KeyError{Key: p, Reason: "not valid UTF-8"}
	}
	if p[0] == '/' {
		return &KeyError{Key: p, Reason: "absolute (keys are relative: no leading slash)"}
	}
	for _, r := range p {
		switch {
		case r == '\\':
			return &KeyError{Key: p, Reason: "contains a backslash (keys are slash-separated)"}
		case r < 0x20 || r == 0x7f:
			return &KeyError{Key: p, Reason: fmt.Sprintf("contains control character %q", r)}
		}
	}
	segs := strings.Split(p, "/")
	if partial {
		// The last element is either "" (the prefix ends with a slash) or
		// the start of a segment; neither is checked as a whole segment.
		segs = segs[:len(segs)-1]
	}
	for _, s := range segs {
		if err := checkSegment(p, s); err != nil {
			return err
		}
	}
	return nil
}

func checkSegment(p, s string) error {
	switch {
	case s == "":
		return &KeyError{Key: p, Reason: "empty segment (double slash)"}
	case s == "." || s == "..":
		return &KeyError{Key: p, Reason: fmt.Sprintf("segment %q is not allowed", s)}
	case len(s) > MaxSegmentLen:
		return &KeyError{Key: p, Reason: fmt.Sprintf("segment longer than %d bytes", MaxSegmentLen)}
	case strings.HasPrefix(s, tmpPrefix):
		return &KeyError{Key: p, Reason: fmt.Sprintf("segment %q uses the reserved prefix %q", s, tmpPrefix)}
	}
	return nil
}

// CheckName reports whether name can be one segment of a key: a job ID,
// savepoint ID or file name passed to the layout helpers (JobPrefix,
// SharedKey, ...). Those helpers do not check their arguments; a name
// containing a slash would still form a valid key, just not the one meant.
func CheckName(name string) error {
	if name == "" {
		return &KeyError{Key: name, Reason: "empty name"}
	}
	if strings.Contains(name, "/") {
		return &KeyError{Key: name, Reason: "a name is one key segment and may not contain a slash"}
	}
	return CheckKey(name)
}
