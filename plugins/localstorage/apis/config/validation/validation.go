// Package validation checks the LocalStorage plugin's arguments. The
// scheduler refuses to start on invalid args, and the error names the field.
package validation

import (
	"k8s.io/apimachinery/pkg/util/validation/field"

	"hwameistor.io/local/plugins/localstorage/apis/config"
)

// Limits of the arguments.
const (
	MaxShapeScore   = 10
	MaxUtilization  = 100
	MaxPoolWeight   = 100
	MinReservTTLSec = 1
)

var knownClasses = map[string]bool{"HDD": true, "SSD": true, "NVMe": true}

// ValidateLocalStorageArgs returns every problem of args, with field paths
// under path (for example "pluginConfig[0].args").
func ValidateLocalStorageArgs(path *field.Path, args *config.LocalStorageArgs) error {
	var errs field.ErrorList
	ss := path.Child("scoringStrategy")
	switch args.ScoringStrategy.Type {
	case config.Spread, config.Binpack:
		if len(args.ScoringStrategy.Shape) > 0 {
			errs = append(errs, field.Invalid(ss.Child("shape"), len(args.ScoringStrategy.Shape), "only used with type shape"))
		}
	case config.Shape:
		errs = append(errs, validateShape(ss.Child("shape"), args.ScoringStrategy.Shape)...)
	default:
		errs = append(errs, field.NotSupported(ss.Child("type"), args.ScoringStrategy.Type,
			[]string{string(config.Spread), string(config.Binpack), string(config.Shape)}))
	}
	for class, w := range args.PoolClassWeights {
		p := path.Child("poolClassWeights").Key(class)
		if !knownClasses[class] {
			errs = append(errs, field.NotSupported(p, class, []string{"HDD", "SSD", "NVMe"}))
		}
		if w < 1 || w > MaxPoolWeight {
			errs = append(errs, field.Invalid(p, w, "must be between 1 and 100"))
		}
	}
	if args.ReservationTTLSeconds < MinReservTTLSec {
		errs = append(errs, field.Invalid(path.Child("reservationTTLSeconds"), args.ReservationTTLSeconds, "must be at least 1"))
	}
	return errs.ToAggregate()
}

func validateShape(path *field.Path, shape []config.UtilizationShapePoint) field.ErrorList {
	var errs field.ErrorList
	if len(shape) == 0 {
		return append(errs, field.Required(path, "at least one point"))
	}
	for i, p := range shape {
		if p.Utilization < 0 || p.Utilization > MaxUtilization {
			errs = append(errs, field.Invalid(path.Index(i).Child("utilization"), p.Utilization, "must be between 0 and 100"))
		} else if i > 0 && p.Utilization <= shape[i-1].Utilization {
			errs = append(errs, field.Invalid(path.Index(i).Child("utilization"), p.Utilization, "must be greater than the previous point's"))
		}
		if p.Score < 0 || p.Score > MaxShapeScore {
			errs = append(errs, field.Invalid(path.Index(i).Child("score"), p.Score, "must be between 0 and 10"))
		}
	}
	return errs
}
