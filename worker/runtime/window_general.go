package runtime

import (
	"fmt"

	sabotv1 "github.com/sabotdev/sabot/gen/sabot/v1"
	"github.com/sabotdev/sabot/internal/jobgraph"
)

func newGeneralWindowOp(spec *sabotv1.WindowAggregate, v *jobgraph.Vertex, info TaskInfo, e *env) (Operator, error) {
	return nil, fmt.Errorf("runtime: window %s: not supported yet", v.ID)
}
