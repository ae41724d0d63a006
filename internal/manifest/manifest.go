package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"buf.build/go/protovalidate"
	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/jobgraph"
)

// Load reads the manifest at path and parses it; see Parse. Errors name the
// file as path. A file that cannot be read is reported as the os error,
// wrapped, not as Errors.
func Load(path string) (*sabotv1.JobSpec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes the manifest in data into a JobSpec that passes
// protovalidate and jobgraph.Resolve, or returns Errors naming every
// problem (up to MaxErrors) at its line and column in filename, which is
// used only in messages.
//
// Problems are found in stages, and a stage runs only when the one before
// found nothing, so that one mistake is reported once and not again as its
// consequences: YAML syntax; then the manifest's shape (unknown keys, wrong
// types, missing keys, step operators, inputs, cycles); then the proto's
// validation rules; then the graph rules and expression type-checking of
// jobgraph.Resolve.
//
// The returned spec is as written: defaults (zero values) are left for
// jobgraph to apply, so the spec stored is the spec the user meant.
func Parse(filename string, data []byte) (*sabotv1.JobSpec, error) {
	d := newDecoder(filename)
	root, ok := d.parse(data)
	if !ok {
		return nil, d.errs.finish(filename)
	}
	spec := d.job(root)
	if len(d.errs) > 0 {
		return nil, d.errs.finish(filename)
	}
	if err := protovalidate.Validate(spec); err != nil {
		d.violations(err)
		return nil, d.errs.finish(filename)
	}
	if _, err := jobgraph.Resolve(spec); err != nil {
		d.graphErrors(err)
		return nil, d.errs.finish(filename)
	}
	return spec, nil
}

// MaxSize is the largest manifest Parse accepts, in bytes: far above any
// real one (the proto allows 1024 steps), so a hostile file costs little.
const MaxSize = 4 << 20

// maxFlowOpeners bounds the number of '[' and '{' in a manifest, quoted or
// not. goccy/go-yaml takes time quadratic in the nesting depth of flow
// collections (100 000 nested '[' take tens of seconds); counting openers
// bounds the depth without a second lexer.
const maxFlowOpeners = 20000

// parse parses data as YAML and returns the body of its only document.
func (d *decoder) parse(data []byte) (ast.Node, bool) {
	if len(data) > MaxSize {
		d.errorf(pos{}, "", "the manifest is %d bytes; at most %d are accepted", len(data), MaxSize)
		return nil, false
	}
	if n := bytes.Count(data, []byte("[")) + bytes.Count(data, []byte("{")); n > maxFlowOpeners {
		d.errorf(pos{}, "", "the manifest has %d '[' and '{'; at most %d are accepted", n, maxFlowOpeners)
		return nil, false
	}
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		var yerr yaml.Error
		if errors.As(err, &yerr) && yerr.GetToken() != nil && yerr.GetToken().Position != nil {
			p := yerr.GetToken().Position
			d.errs = append(d.errs, &Error{File: d.file, Line: p.Line, Column: p.Column, Msg: yerr.GetMessage(), Err: err})
		} else {
			d.errs = append(d.errs, &Error{File: d.file, Msg: err.Error(), Err: err})
		}
		return nil, false
	}
	var docs []*ast.DocumentNode
	for _, doc := range f.Docs {
		if doc != nil && doc.Body != nil {
			docs = append(docs, doc)
		}
	}
	switch len(docs) {
	case 0:
		d.errorf(pos{}, "", "the manifest is empty; a job needs at least name and steps")
		return nil, false
	case 1:
	default:
		d.errorf(posOf(docs[1].Body), "", "a manifest holds one job, but this file has %d YAML documents", len(docs))
		return nil, false
	}
	for _, n := range ast.Filter(ast.AnchorType, docs[0].Body) {
		if a, ok := n.(*ast.AnchorNode); ok {
			d.anchors = append(d.anchors, a)
		}
	}
	return docs[0].Body, true
}
