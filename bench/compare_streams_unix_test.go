//go:build unix

package bench

import "testing"

func TestPickScenariosStreams(t *testing.T) {
	all, err := pickScenarios(nil)
	if err != nil || !all[StreamsScenario] || !all["s1"] {
		t.Errorf("default scenarios = %v, %v; want all with streams", all, err)
	}
	only, err := pickScenarios([]string{StreamsScenario})
	if err != nil || len(only) != 1 || !only[StreamsScenario] {
		t.Errorf("streams only = %v, %v", only, err)
	}
	if _, err := pickScenarios([]string{"s9"}); err == nil {
		t.Error("an unknown scenario was accepted")
	}
}
