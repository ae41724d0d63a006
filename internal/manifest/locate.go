package manifest

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"buf.build/go/protovalidate"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"

	"github.com/sabotdev/sabot/internal/jobgraph"
	"github.com/sabotdev/sabot/sql/expr"
)

// This file maps problems found on the proto (by protovalidate and
// jobgraph) back to the manifest: a proto field path becomes a manifest
// path, and the manifest path the position the decoder recorded for it.

// elem is one element of a proto field path: a field name, with an index
// into a repeated field or a key into a map.
type elem struct {
	name   string
	index  int // -1 when none
	key    string
	hasKey bool
}

// violations reports the protovalidate error err.
func (d *decoder) violations(err error) {
	var ve *protovalidate.ValidationError
	if !errors.As(err, &ve) {
		// A rule that fails to compile or run is a bug in the rules, not
		// the manifest; say so rather than blame a line.
		d.errorf(pos{}, "", "validating the job spec failed: %v", err)
		return
	}
	for _, v := range ve.Violations {
		var el []elem
		for _, fe := range v.Proto.GetField().GetElements() {
			e := elem{name: fe.GetFieldName(), index: -1}
			switch {
			case fe.HasIndex():
				e.index = int(fe.GetIndex())
			case fe.HasStringKey():
				e.key, e.hasKey = fe.GetStringKey(), true
			}
			el = append(el, e)
		}
		path, _ := d.manifestPath(el)
		// Message-level rules sit on the message; point at the key to edit.
		switch v.Proto.GetRuleId() {
		case "job.parallelism_within_max":
			path = "parallelism"
		case "sequence.end_after_start":
			path += ".end"
		}
		field, p := d.locate(path)
		msg := violationMsg(v)
		if rest, ok := strings.CutPrefix(path, field+"."); ok && field != "" {
			// The key was left out (a default broke the rule): name it.
			msg = rest + " " + msg
		}
		d.errorf(p, field, "%s", msg)
	}
}

// violationMsg rewords a violation for a manifest: protovalidate's
// "value must be …" loses its subject (the field path says which value),
// and a pattern mismatch shows the value that failed.
func violationMsg(v *protovalidate.Violation) string {
	msg := v.Proto.GetMessage()
	if msg == "" {
		return fmt.Sprintf("breaks rule %s (%s)", v.Proto.GetRuleId(), protovalidate.FieldPathString(v.Proto.GetField()))
	}
	msg = strings.TrimPrefix(msg, "value ")
	if v.Proto.GetForKey() {
		msg = "key " + msg
	}
	if v.Proto.GetRuleId() == "string.pattern" && v.FieldValue.IsValid() {
		msg = strconv.Quote(v.FieldValue.String()) + " " + msg
	}
	return msg
}

// graphErrors reports the jobgraph.Resolve error err.
func (d *decoder) graphErrors(err error) {
	var jerrs jobgraph.Errors
	if !errors.As(err, &jerrs) {
		d.errorf(pos{}, "", "%v", err)
		return
	}
	for _, je := range jerrs {
		s := d.byID[je.Vertex]
		var path string
		var isExpr bool
		switch {
		case s != nil && je.Field == "graph.edges":
			// A problem with a step's inputs as a whole: point at its
			// inputs key, or at the step when its input is implicit.
			path = s.path + ".inputs"
		case s != nil && strings.HasPrefix(je.Field, "operator"):
			path, isExpr = d.manifestPath(parseFieldPath(fmt.Sprintf("graph.vertices[%d].%s", s.index, je.Field)))
		default:
			path, isExpr = d.manifestPath(parseFieldPath(je.Field))
		}
		field, p := d.locate(path)
		msg := je.Msg
		var xe *expr.Error
		if isExpr && errors.As(je, &xe) {
			n := d.exprs[path]
			if xp, ok := exprPos(n, xe.Src, xe.Offset); ok {
				p, msg = xp, xe.Msg
			} else {
				// A multi-line plain scalar or an escape before the
				// problem: name the offset instead of guessing a column.
				p, msg = posOf(n), fmt.Sprintf("at offset %d of the expression: %s", xe.Offset, xe.Msg)
			}
		}
		d.errs = append(d.errs, &Error{File: d.file, Line: p.line, Column: p.col, Field: field, Msg: msg, Err: je})
	}
}

// parseFieldPath splits a dotted field path with [index] subscripts, as
// jobgraph writes them ("graph.vertices[2].operator.map.columns[0].expr").
func parseFieldPath(s string) []elem {
	if s == "" {
		return nil
	}
	parts := strings.Split(s, ".")
	el := make([]elem, 0, len(parts))
	for _, p := range parts {
		e := elem{name: p, index: -1}
		if i := strings.IndexByte(p, '['); i >= 0 && strings.HasSuffix(p, "]") {
			if n, err := strconv.Atoi(p[i+1 : len(p)-1]); err == nil {
				e.name, e.index = p[:i], n
			}
		}
		el = append(el, e)
	}
	return el
}

// manifestPath turns a proto field path of the spec into the manifest path
// of the key that wrote it. isExpr reports that the field is an expression
// (a map column's expr or a filter's condition), whose value node is in
// d.exprs under the returned path.
func (d *decoder) manifestPath(el []elem) (path string, isExpr bool) {
	if len(el) == 0 {
		return "", false
	}
	switch el[0].name {
	case "name", "parallelism", "max_parallelism":
		return el[0].name, false
	case "labels":
		if el[0].hasKey {
			return childPath("labels", el[0].key), false
		}
		return "labels", false
	case "checkpointing", "restart_strategy", "autoscaler":
		// Written key for key as the proto nests them.
		path := ""
		for _, e := range el {
			path = childPath(path, e.name)
		}
		return path, false
	case "graph":
	default:
		return "", false
	}
	if len(el) < 2 {
		return "steps", false
	}
	i := el[1].index
	switch {
	case el[1].name == "vertices" && i >= 0 && i < len(d.steps):
		return d.vertexPath(d.steps[i], el[2:])
	case el[1].name == "edges" && i >= 0 && i < len(d.edges):
		return d.edgePath(d.edges[i], el[2:]), false
	}
	return "steps", false
}

func (d *decoder) vertexPath(s *step, el []elem) (path string, isExpr bool) {
	if len(el) == 0 {
		return s.path, false
	}
	if el[0].name != "operator" {
		return s.path + "." + el[0].name, false // id, parallelism
	}
	if len(el) < 2 {
		return s.path, false
	}
	base := s.path + "." + el[1].name // the operator key
	rest := el[2:]
	switch {
	case len(rest) == 0:
		return base, false
	case el[1].name == "filter":
		return base, rest[0].name == "condition"
	case el[1].name == "map":
		j := rest[0].index
		if rest[0].name != "columns" || j < 0 || j >= len(s.columns) {
			return base, false
		}
		col := childPath(base, s.columns[j])
		return col, len(rest) > 1 && rest[1].name == "expr"
	default:
		path := base
		for _, e := range rest {
			path += "." + e.name
			if e.index >= 0 {
				path += fmt.Sprintf("[%d]", e.index)
			}
		}
		return path, false
	}
}

func (d *decoder) edgePath(o edgeOrigin, el []elem) string {
	s := o.step
	if len(el) > 0 {
		switch el[0].name {
		case "partitioning":
			return s.path + ".partitioning"
		case "key_fields":
			if el[0].index >= 0 {
				return fmt.Sprintf("%s.key_by[%d]", s.path, el[0].index)
			}
			return s.path + ".key_by"
		}
	}
	if o.input < 0 {
		return s.path
	}
	return fmt.Sprintf("%s.inputs[%d]", s.path, o.input)
}

// locate returns the position recorded for path or, when the key was not
// written (a default broke a rule), for its nearest written ancestor, and
// that ancestor's path.
func (d *decoder) locate(path string) (string, pos) {
	for {
		if p, ok := d.at[path]; ok {
			return path, p
		}
		if path == "" {
			return "", pos{}
		}
		path = parentPath(path)
	}
}

// parentPath strips the last element of a manifest path: "steps[1].map" →
// "steps[1]" → "steps" → "".
func parentPath(p string) string {
	if strings.HasSuffix(p, "\"]") {
		if i := strings.LastIndex(p, "[\""); i >= 0 {
			return p[:i]
		}
	}
	if strings.HasSuffix(p, "]") {
		if i := strings.LastIndexByte(p, '['); i >= 0 {
			return p[:i]
		}
	}
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i]
	}
	return ""
}

// exprPos places byte offset off of the expression src, which was decoded
// from the scalar n, in the file. It handles single-line plain and quoted
// scalars and block scalars (| and >), and checks the scalar's source text
// against src up to the offset so that an escape sequence or a folded line
// yields "don't know" rather than a wrong column.
func exprPos(n ast.Node, src string, off int) (pos, bool) {
	if n == nil || off < 0 || off > len(src) {
		return pos{}, false
	}
	prefix := src[:off]
	if lit, ok := n.(*ast.LiteralNode); ok {
		return blockPos(lit, prefix)
	}
	tk := n.GetToken()
	if tk == nil || tk.Position == nil || strings.ContainsAny(prefix, "\r\n") {
		return pos{}, false
	}
	raw := strings.TrimLeft(tk.Origin, " \t\r\n")
	col := tk.Position.Column
	if tk.Type == token.DoubleQuoteType || tk.Type == token.SingleQuoteType {
		if raw == "" {
			return pos{}, false
		}
		raw = raw[1:]
		col++
	}
	if !strings.HasPrefix(raw, prefix) {
		return pos{}, false
	}
	return pos{line: tk.Position.Line, col: col + utf8.RuneCountInString(prefix)}, true
}

// blockPos places prefix, the start of a block scalar's value, in the file.
// The scalar's origin holds its lines as written, indentation included; the
// content starts on the line after the | or > header.
func blockPos(lit *ast.LiteralNode, prefix string) (pos, bool) {
	if lit.Start == nil || lit.Start.Position == nil || lit.Value == nil || lit.Value.GetToken() == nil {
		return pos{}, false
	}
	folded := lit.Start.Type == token.FoldedType
	lines := strings.Split(lit.Value.GetToken().Origin, "\n")
	indent := -1
	for _, l := range lines {
		if strings.TrimSpace(l) != "" {
			indent = len(l) - len(strings.TrimLeft(l, " "))
			break
		}
	}
	if indent < 0 {
		return pos{}, false
	}
	for i, l := range lines {
		lines[i] = l[min(indent, len(l)-len(strings.TrimLeft(l, " "))):]
	}
	body := strings.Join(lines, "\n")
	line, col, i := 0, 0, 0
	for _, r := range prefix {
		if i >= len(body) {
			return pos{}, false
		}
		br, size := utf8.DecodeRuneInString(body[i:])
		if br != r && (!folded || r != ' ' || br != '\n') {
			return pos{}, false
		}
		if br == '\n' {
			line, col = line+1, 0
		} else {
			col++
		}
		i += size
	}
	return pos{line: lit.Start.Position.Line + 1 + line, col: indent + 1 + col}, true
}
