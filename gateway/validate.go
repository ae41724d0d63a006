package gateway

import (
	"context"
	"errors"
	"strings"

	"buf.build/go/protovalidate"
	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
)

// validateInterceptor rejects a request whose message breaks its
// protovalidate rules with InvalidArgument. The message names every bad
// field; the violations are attached as a buf.validate.Violations detail.
func validateInterceptor(v protovalidate.Validator) connect.UnaryInterceptorFunc {
	return func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			msg, ok := req.Any().(proto.Message)
			if !ok {
				return nil, connect.NewError(connect.CodeInternal, errors.New("request is not a protobuf message"))
			}
			if err := v.Validate(msg); err != nil {
				return nil, validationError(err)
			}
			return next(ctx, req)
		}
	}
}

func validationError(err error) *connect.Error {
	var ve *protovalidate.ValidationError
	if !errors.As(err, &ve) {
		// A rule that fails to compile or evaluate is our bug, not the caller's.
		return connect.NewError(connect.CodeInternal, errors.New("request validation failed to run"))
	}
	parts := make([]string, 0, len(ve.Violations))
	for _, v := range ve.Violations {
		parts = append(parts, v.String())
	}
	cerr := connect.NewError(connect.CodeInvalidArgument, errors.New("invalid request: "+strings.Join(parts, "; ")))
	if detail, derr := connect.NewErrorDetail(ve.ToProto()); derr == nil {
		cerr.AddDetail(detail)
	}
	return cerr
}
