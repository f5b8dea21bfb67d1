package table

import (
	"github.com/duality-streams/duality/internal/dsl"
)

// option is an option of package table; it is a stream.Option.
type option func(*dsl.StepConfig)

func (f option) ApplyStep(c *dsl.StepConfig) { f(c) }

// Option names of package table.
const optEmitPerCommit = "EmitPerCommit"

// Accepted option sets of the steps of this package.
var (
	namedOnly    = []string{dsl.OptNamed}
	valueOpts    = []string{dsl.OptNamed, dsl.OptWithValueCodec}
	codecOpts    = []string{dsl.OptNamed, dsl.OptWithKeyCodec, dsl.OptWithValueCodec}
	groupByOpts  = []string{dsl.OptNamed, dsl.OptPartitions, dsl.OptWithKeyCodec, dsl.OptWithValueCodec}
	toStreamOpts = []string{dsl.OptNamed, optEmitPerCommit}
)

// partName returns the name of a part of a step: "<name>-<suffix>" when
// the step is named, "" (the default "<op>-<n>") when not.
func partName(cfg *dsl.StepConfig, suffix string) string {
	if cfg.Name == "" {
		return ""
	}
	return cfg.Name + "-" + suffix
}
