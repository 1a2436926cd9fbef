package postgres

import (
	"fmt"
	"testing"

	"github.com/corral-dev/corral/policy"
)

func TestZZLeak(t *testing.T) {
	m := compileMasks([]policy.Mask{{Columns: []string{"customers.email", "public.customers.card"}, Method: "partial"}})
	for _, q := range []string{
		"SELECT (SELECT c.email FROM customers c LIMIT 1) FROM pg_class c",
		"SELECT (SELECT c FROM customers c LIMIT 1) FROM pg_class c",
		"SELECT (SELECT row_to_json(c.*) FROM customers c LIMIT 1) FROM pg_class c",
		"SELECT lower(x.e) FROM (SELECT c.email AS e FROM customers c) x, pg_class c",
		"SELECT email INTO x FROM customers",
		"SELECT * INTO x FROM customers",
		"SELECT 1 FROM customers WHERE pg_notify('ch', email) IS NULL",
		"SELECT id FROM customers WHERE email::int = 0",
		"SELECT email FROM customers",
		"DELETE FROM customers RETURNING email",
		"DELETE FROM customers RETURNING lower(email)",
		"UPDATE customers SET id = 1 RETURNING customers",
		"SELECT customers.email FROM customers",
		"SELECT public.customers.email || '' FROM public.customers",
		"SELECT lower(email) FROM customers",
		"SELECT c.email FROM customers c",
		"SELECT lower(C.EMAIL) FROM CUSTOMERS C",
		"SELECT lower(\"Customers\".email) FROM \"Customers\"",
		"COPY customers TO '/tmp/x'",
		"COPY customers TO PROGRAM 'cat'",
		"SELECT (c).email FROM customers c",
		"SELECT (customers.*).email FROM customers",
		"SELECT c.* FROM customers c",
		"SELECT * FROM customers c",
		"SELECT x.* FROM (SELECT * FROM customers) x",
		"SELECT array_agg(email) FROM customers",
		"SELECT email FROM customers UNION ALL SELECT 'x'",
		"SELECT t FROM customers t",
		"SELECT to_json(t) FROM customers t",
		"SELECT lower(card) FROM public.customers",
		"SELECT lower(card) FROM other.customers",
		"SELECT json_agg(c) FROM customers c",
		"SELECT (SELECT email) FROM customers",
		"SELECT id FROM customers ORDER BY email",
		"SELECT pg_notify('ch', 'x')",
		"TABLE customers",
		"VALUES ((SELECT email FROM customers LIMIT 1))",
		"SELECT ('/etc/hostname'::text).pg_read_file",
		"SELECT (x).pg_ls_dir FROM (SELECT '.'::text AS x) s",
		"SELECT 1 FROM customers WHERE set_config('my.v', email, false) IS NOT NULL",
		"SELECT c.email FROM customers AS c(x, email)",
		"SELECT lower(c.email) FROM customers AS c(x, y, email)",
		"SELECT lower(e) FROM customers AS c(i, e)",
		"SELECT lower(d) FROM customers AS c(i, e, d)",
	} {
		st, err := Classify(q)
		if err != nil {
			fmt.Println(q, "ERR", err)
			continue
		}
		fmt.Printf("%-80s leak=%q ops=%v\n", q, m.leak(&st[0]), st[0].Ops)
	}
}
