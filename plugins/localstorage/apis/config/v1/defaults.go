package v1

// Defaults: spread scoring, equal pool weights, five-minute reservations.
const (
	DefaultScoringStrategyType         = "spread"
	DefaultReservationTTLSeconds int64 = 300
	DefaultPoolClassWeight       int64 = 1
)

// DefaultShape is used when type is shape and no points are given: the score
// falls linearly as the pool fills (0% -> 10, 100% -> 0).
var DefaultShape = []UtilizationShapePoint{{Utilization: 0, Score: 10}, {Utilization: 100, Score: 0}}

// SetDefaults_LocalStorageArgs fills every unset field.
func SetDefaults_LocalStorageArgs(a *LocalStorageArgs) { //nolint:revive // the scheme's naming convention
	if a.ScoringStrategy == nil {
		a.ScoringStrategy = &ScoringStrategy{}
	}
	if a.ScoringStrategy.Type == "" {
		a.ScoringStrategy.Type = DefaultScoringStrategyType
	}
	if a.ScoringStrategy.Type == "shape" && len(a.ScoringStrategy.Shape) == 0 {
		a.ScoringStrategy.Shape = append([]UtilizationShapePoint(nil), DefaultShape...)
	}
	if a.PoolClassWeights == nil {
		a.PoolClassWeights = map[string]int64{}
	}
	for _, c := range []string{"HDD", "SSD", "NVMe"} {
		if _, ok := a.PoolClassWeights[c]; !ok {
			a.PoolClassWeights[c] = DefaultPoolClassWeight
		}
	}
	if a.ReservationTTLSeconds == nil {
		ttl := DefaultReservationTTLSeconds
		a.ReservationTTLSeconds = &ttl
	}
}
