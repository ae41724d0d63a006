package blob

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Open opens the store a URL names:
//
//	file:///abs/path
//	s3://bucket[/prefix][?endpoint=http://127.0.0.1:9000&region=us-east-1&path_style=true]
//
// For file, the directory is created if missing. For s3, endpoint is an
// S3-compatible server's base URL (default: AWS for the region), region is
// the signing region (default: AWS_REGION, then AWS_DEFAULT_REGION), and
// path_style selects path-style addressing (default false; S3-compatible
// servers on an IP address or localhost usually need true). Opening an S3
// store does no I/O: a wrong bucket or credentials show up on first use.
//
// A URL Open cannot use yields a *URLError naming the part that is wrong.
// Credentials never go in the URL; see Options.
func Open(rawURL string, opts Options) (Store, error) {
	loc, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	if loc.s3 != nil {
		return OpenS3(*loc.s3, opts)
	}
	return OpenFile(loc.dir)
}

// location is a parsed store URL: exactly one of dir and s3 is set.
type location struct {
	dir string
	s3  *S3Location
}

// s3Params are the query parameters an s3 URL accepts.
func s3Params() []string { return []string{"endpoint", "path_style", "region"} }

func parseURL(raw string) (location, error) {
	bad := func(part, format string, args ...any) error {
		return &URLError{URL: redactURL(raw), Part: part, Reason: fmt.Sprintf(format, args...)}
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // ue repeats the URL, possibly with a password
		}
		return location{}, bad("syntax", "%v", err)
	}
	if u.User != nil {
		return location{}, bad("userinfo", "credentials do not belong in the URL: use the AWS credential chain or Options")
	}
	if u.Fragment != "" || strings.HasSuffix(raw, "#") {
		return location{}, bad("fragment", "not allowed")
	}
	switch u.Scheme {
	case "file":
		return parseFileURL(u, bad)
	case "s3":
		return parseS3URL(u, bad)
	case "":
		return location{}, bad("scheme", "missing: want file:///abs/path or s3://bucket/prefix")
	default:
		return location{}, bad("scheme", "unsupported %q: want file or s3", u.Scheme)
	}
}

func parseFileURL(u *url.URL, bad func(part, format string, args ...any) error) (location, error) {
	if u.Opaque != "" {
		return location{}, bad("path", "%q is not absolute: write file:///abs/path", u.Opaque)
	}
	if u.Host != "" && u.Host != "localhost" {
		return location{}, bad("host", "file URLs take no host (got %q): write file:///abs/path, with three slashes", u.Host)
	}
	if u.RawQuery != "" || u.ForceQuery {
		return location{}, bad("query", "file URLs take no parameters")
	}
	if u.Path == "" || !filepath.IsAbs(filepath.FromSlash(u.Path)) {
		return location{}, bad("path", "missing or not absolute: write file:///abs/path")
	}
	return location{dir: filepath.Clean(filepath.FromSlash(u.Path))}, nil
}

func parseS3URL(u *url.URL, bad func(part, format string, args ...any) error) (location, error) {
	if u.Opaque != "" {
		return location{}, bad("bucket", "missing: write s3://bucket/prefix")
	}
	if u.Port() != "" {
		return location{}, bad("bucket", "%q has a port: the bucket is a name; put the server in endpoint=", u.Host)
	}
	if err := checkBucket(u.Host); err != nil {
		return location{}, bad("bucket", "%v", err)
	}
	loc := S3Location{Bucket: u.Host}

	if p := strings.TrimPrefix(u.Path, "/"); p != "" {
		if err := CheckKey(strings.TrimSuffix(p, "/")); err != nil {
			var ke *KeyError
			if errors.As(err, &ke) {
				return location{}, bad("prefix", "%s", ke.Reason)
			}
			return location{}, bad("prefix", "%v", err)
		}
		loc.Prefix = p
	}

	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return location{}, bad("query", "%v", err)
	}
	for _, name := range slices.Sorted(maps.Keys(q)) {
		part := fmt.Sprintf("query parameter %q", name)
		vals := q[name]
		if !slices.Contains(s3Params(), name) {
			return location{}, bad(part, "unknown: want one of %s", strings.Join(s3Params(), ", "))
		}
		if len(vals) != 1 {
			return location{}, bad(part, "given %d times", len(vals))
		}
		v := vals[0]
		switch name {
		case "endpoint":
			if err := checkEndpoint(v); err != nil {
				return location{}, bad(part, "%v", err)
			}
			loc.Endpoint = strings.TrimSuffix(v, "/")
		case "region":
			if err := checkRegion(v); err != nil {
				return location{}, bad(part, "%v", err)
			}
			loc.Region = v
		case "path_style":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return location{}, bad(part, "%q is not a boolean (true or false)", v)
			}
			loc.PathStyle = b
		}
	}
	return location{s3: &loc}, nil
}

// checkBucket applies S3's rules for general-purpose bucket names.
func checkBucket(b string) error {
	switch {
	case b == "":
		return errors.New("missing: write s3://bucket/prefix")
	case len(b) < 3 || len(b) > 63:
		return fmt.Errorf("%q must be 3 to 63 characters long", b)
	case strings.Contains(b, ".."):
		return fmt.Errorf("%q has two adjacent dots", b)
	case net.ParseIP(b) != nil:
		return fmt.Errorf("%q is an IP address: put the server in endpoint= and the bucket in the host", b)
	}
	for i, r := range b {
		alnum := r >= 'a' && r <= 'z' || r >= '0' && r <= '9'
		if !alnum && (r != '.' && r != '-' || i == 0 || i == len(b)-1) {
			return fmt.Errorf("%q may hold only lower-case letters, digits, dots and hyphens, and must begin and end with a letter or digit", b)
		}
	}
	return nil
}

func checkEndpoint(v string) error {
	e, err := url.Parse(v)
	switch {
	case !strings.HasPrefix(v, "http://") && !strings.HasPrefix(v, "https://"):
		return fmt.Errorf("%q must be an http:// or https:// URL", v)
	case err != nil:
		return fmt.Errorf("%q does not parse: %w", v, errors.Unwrap(err))
	case e.Scheme != "http" && e.Scheme != "https":
		return fmt.Errorf("%q must be an http:// or https:// URL", v)
	case e.Host == "":
		return fmt.Errorf("%q has no host", v)
	case e.User != nil:
		return fmt.Errorf("%q carries credentials: use the AWS credential chain or Options", e.Redacted())
	case e.Path != "" && e.Path != "/", e.RawQuery != "", e.Fragment != "":
		return fmt.Errorf("%q must be a base URL: scheme, host and port only", v)
	}
	return nil
}

func checkRegion(v string) error {
	if v == "" {
		return errors.New("empty")
	}
	for _, r := range v {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
			return fmt.Errorf("%q is not a region name like us-east-1", v)
		}
	}
	return nil
}

// redactURL hides a password in a URL that may not parse.
func redactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	i := strings.Index(raw, "://")
	if i < 0 {
		return raw
	}
	rest := raw[i+3:]
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	if at := strings.LastIndex(rest[:end], "@"); at >= 0 {
		return raw[:i+3] + "REDACTED@" + rest[at+1:]
	}
	return raw
}
