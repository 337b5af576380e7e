package schemas

import (
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// QuoteIdent quotes a PostgreSQL identifier.
func QuoteIdent(name string) string { return pgx.Identifier{name}.Sanitize() }

// DDL returns the statements that create the table and its child tables, or
// bring existing ones up to date by adding the columns they lack. They are
// idempotent: applying them twice changes nothing. A root table's primary key
// is (_tenant, _id); a child table's is (_tenant, _id, _idx). _version and
// _deleted let the sink apply only newer versions and keep tombstones.
func (t Table) DDL() []string {
	var stmts []string
	for _, tt := range t.All() {
		stmts = append(stmts, tt.ddl()...)
	}
	return stmts
}

func (t Table) ddl() []string {
	var b strings.Builder
	name := QuoteIdent(t.Name)
	fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s (\n", name)
	for _, c := range t.Columns {
		fmt.Fprintf(&b, "  %s %s%s,\n", QuoteIdent(c.Name), c.Type.canonical(), notNull(c.Name))
	}
	key := make([]string, 0, 3)
	for _, k := range t.Key() {
		key = append(key, QuoteIdent(k))
	}
	fmt.Fprintf(&b, "  PRIMARY KEY (%s)\n)", strings.Join(key, ", "))
	stmts := []string{b.String()}
	for _, c := range t.Columns {
		stmts = append(stmts, fmt.Sprintf("ALTER TABLE %s ADD COLUMN IF NOT EXISTS %s %s",
			name, QuoteIdent(c.Name), c.Type.canonical()))
	}
	if t.RLS {
		stmts = append(stmts, t.rlsDDL()...)
	}
	return stmts
}

// TenantSetting is the session setting the row-level-security policy reads:
// SET docshift.tenant = 'acme' limits a session to one tenant's rows.
const TenantSetting = "docshift.tenant"

// rlsDDL enables row-level security with a policy that shows a session only
// the rows of the tenant in its docshift.tenant setting. The table owner
// (the role docshift writes with) is not subject to it.
func (t Table) rlsDDL() []string {
	name := QuoteIdent(t.Name)
	policy := Identifier(t.Name + "_tenant")
	return []string{
		fmt.Sprintf("ALTER TABLE %s ENABLE ROW LEVEL SECURITY", name),
		fmt.Sprintf(`DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_policies WHERE tablename = %s AND policyname = %s) THEN
    CREATE POLICY %s ON %s USING (%s = current_setting('%s', true));
  END IF;
END $$`, quoteLiteral(t.Name), quoteLiteral(policy), QuoteIdent(policy), name, QuoteIdent(ColTenant), TenantSetting),
	}
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func notNull(col string) string {
	switch col {
	case ColTenant, ColID, ColVersion, ColIdx:
		return " NOT NULL"
	case ColDeleted:
		return " NOT NULL DEFAULT false"
	}
	return ""
}
