package blob

// ParseURL exposes the URL parser to the tests without opening anything.
func ParseURL(raw string) (dir string, s3 *S3Location, err error) {
	loc, err := parseURL(raw)
	return loc.dir, loc.s3, err
}

// TrailerSize is the number of bytes a stored object holds beyond its content.
const TrailerSize = trailerSize
