package manifest

import "fmt"

// suggest returns the option closest to s when it is a plausible misspelling
// (an edit distance of at most a third of its length, and at most 3), or "".
func suggest(s string, options []string) string {
	best, bestDist := "", 0
	for _, o := range options {
		dist := editDistance(s, o)
		limit := min(3, max(1, len(o)/3))
		if dist <= limit && (best == "" || dist < bestDist) {
			best, bestDist = o, dist
		}
	}
	return best
}

// suggestion is suggest phrased for the end of a message.
func suggestion(s string, options []string) string {
	if sg := suggest(s, options); sg != "" {
		return fmt.Sprintf(", did you mean %q?", sg)
	}
	return ""
}

// editDistance is the Damerau–Levenshtein distance (optimal string
// alignment) between a and b, by bytes: adjacent transpositions count once,
// the commonest typo after a dropped letter.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		// Keys are short; do not spend quadratic time on a pasted paragraph.
		if a == b {
			return 0
		}
		return max(len(a), len(b))
	}
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
