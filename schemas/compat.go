package schemas

import (
	"fmt"

	havro "github.com/hamba/avro/v2"
)

// CheckBackward reports whether readers of the new schema can read records
// written with the old one (Avro schema resolution), which is what a growing
// mapping must keep: added columns and child tables carry defaults.
func CheckBackward(old, new *Schema) error {
	o, err := havro.Parse(old.JSON)
	if err != nil {
		return fmt.Errorf("parsing old schema of %s: %w", old.Table.Name, err)
	}
	n, err := havro.Parse(new.JSON)
	if err != nil {
		return fmt.Errorf("parsing new schema of %s: %w", new.Table.Name, err)
	}
	if err := havro.NewSchemaCompatibility().Compatible(n, o); err != nil {
		return fmt.Errorf("schema of table %s is not backward compatible: %w", new.Table.Name, err)
	}
	return nil
}
