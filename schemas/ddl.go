package schemas

import (
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// QuoteIdent quotes a PostgreSQL identifier.
func QuoteIdent(name string) string { return pgx.Identifier{name}.Sanitize() }

// DDL returns the statements that create the table, or bring an existing one
// up to date by adding the columns it lacks. They are idempotent: applying them
// twice changes nothing. The primary key is (_tenant, _id); _version and
// _deleted let the sink apply only newer versions and keep tombstones.
func (t Table) DDL() []string {
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s (\n", QuoteIdent(t.Name))
	for _, c := range t.Columns {
		fmt.Fprintf(&b, "  %s %s%s,\n", QuoteIdent(c.Name), c.Type.canonical(), notNull(c.Name))
	}
	fmt.Fprintf(&b, "  PRIMARY KEY (%s, %s)\n)", QuoteIdent(ColTenant), QuoteIdent(ColID))
	stmts := []string{b.String()}
	for _, c := range t.Columns {
		stmts = append(stmts, fmt.Sprintf("ALTER TABLE %s ADD COLUMN IF NOT EXISTS %s %s",
			QuoteIdent(t.Name), QuoteIdent(c.Name), c.Type.canonical()))
	}
	return stmts
}

func notNull(col string) string {
	switch col {
	case ColTenant, ColID, ColVersion:
		return " NOT NULL"
	case ColDeleted:
		return " NOT NULL DEFAULT false"
	}
	return ""
}
