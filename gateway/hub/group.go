package hub

import (
	"strconv"
	"strings"

	"github.com/dockcast/dockcast/gateway/client"
)

// group is the clients with the same filter, subjects and token rights:
// whether an event is for them is decided once, for all of them (most
// clients of a gateway ask for the same few filters). The subject index
// holds groups, not clients. Guarded by Hub.mu.
type group struct {
	key     string
	members []*client.Client // members[0] decides for all (equal Specs)
	pos     map[*client.Client]int
}

// groupKey names what client.Wants and the index depend on: the filter,
// its subjects and the token's patterns.
func groupKey(c *client.Client) string {
	var b strings.Builder
	for _, t := range c.Spec.Filter.Terms() {
		b.WriteString(t)
		b.WriteByte(0)
	}
	b.WriteByte(1)
	for _, s := range c.Spec.Subjects {
		b.WriteString(s)
		b.WriteByte(0)
	}
	b.WriteByte(1)
	if c.Spec.Patterns == nil {
		b.WriteString("*") // anonymous: everything
	}
	for _, p := range c.Spec.Patterns {
		b.WriteString(p)
		b.WriteByte(0)
	}
	b.WriteByte(1)
	b.WriteString(strconv.FormatBool(c.Spec.Exact))
	return b.String()
}

func (g *group) add(c *client.Client) {
	g.pos[c] = len(g.members)
	g.members = append(g.members, c)
}

// remove takes c out; it reports whether the group is empty now.
func (g *group) remove(c *client.Client) bool {
	i, ok := g.pos[c]
	if !ok {
		return len(g.members) == 0
	}
	last := len(g.members) - 1
	if i != last {
		g.members[i] = g.members[last]
		g.pos[g.members[i]] = i
	}
	g.members[last] = nil
	g.members = g.members[:last]
	delete(g.pos, c)
	return len(g.members) == 0
}
