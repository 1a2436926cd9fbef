package postgres

import (
	"fmt"
	"strings"
	"testing"

	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"
)

func TestZZEnum(t *testing.T) {
	n := &pg.Node{}
	od := n.ProtoReflect().Descriptor().Oneofs().Get(0)
	for i := 0; i < od.Fields().Len(); i++ {
		fd := od.Fields().Get(i)
		if fd.Kind() != protoreflect.MessageKind || !strings.HasSuffix(string(fd.Message().Name()), "Stmt") {
			continue
		}
		m := &pg.Node{}
		r := m.ProtoReflect()
		r.Set(fd, protoreflect.ValueOfMessage(r.NewField(fd).Message()))
		ops, err := opsOfNode(m)
		fmt.Println(fd.Message().Name(), ops, err)
	}
}
