package kube

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// The CRD manifests, decoded strictly into the part of
// apiextensions.k8s.io/v1 they use: a misspelt key fails here rather than
// being dropped by the API server.
type crd struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Group string `json:"group"`
		Scope string `json:"scope"`
		Names struct {
			Kind       string   `json:"kind"`
			ListKind   string   `json:"listKind"`
			Plural     string   `json:"plural"`
			Singular   string   `json:"singular"`
			ShortNames []string `json:"shortNames"`
			Categories []string `json:"categories"`
		} `json:"names"`
		Versions []struct {
			Name         string `json:"name"`
			Served       bool   `json:"served"`
			Storage      bool   `json:"storage"`
			Subresources *struct {
				Status *struct{} `json:"status"`
			} `json:"subresources"`
			AdditionalPrinterColumns []struct {
				Name        string `json:"name"`
				Type        string `json:"type"`
				JSONPath    string `json:"jsonPath"`
				Description string `json:"description"`
				Priority    int    `json:"priority"`
			} `json:"additionalPrinterColumns"`
			Schema struct {
				OpenAPIV3Schema *schemaProps `json:"openAPIV3Schema"`
			} `json:"schema"`
		} `json:"versions"`
	} `json:"spec"`
}

type schemaProps struct {
	Type                 string                  `json:"type"`
	Format               string                  `json:"format"`
	Description          string                  `json:"description"`
	Required             []string                `json:"required"`
	Properties           map[string]*schemaProps `json:"properties"`
	Items                *schemaProps            `json:"items"`
	AdditionalProperties *schemaProps            `json:"additionalProperties"`
	Enum                 []any                   `json:"enum"`
	Default              any                     `json:"default"`
	Minimum              *float64                `json:"minimum"`
	Maximum              *float64                `json:"maximum"`
	MaxLength            *int                    `json:"maxLength"`
	MaxItems             *int                    `json:"maxItems"`
	Validations          []struct {
		Rule    string `json:"rule"`
		Message string `json:"message"`
	} `json:"x-kubernetes-validations"`
}

func loadCRD(t *testing.T, file string) *crd {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "daemonset", "base", "crds", file))
	if err != nil {
		t.Fatal(err)
	}
	var c crd
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return &c
}

func TestCRDsDecodeStrictly(t *testing.T) {
	var bad crd
	if err := yaml.UnmarshalStrict([]byte("apiVersion: v1\nspec: {grop: x}\n"), &bad); err == nil {
		t.Fatal("an unknown field decoded")
	}
}

func TestCRDsMatchTheGoTypes(t *testing.T) {
	for _, tc := range []struct {
		file, kind, plural, scope string
		spec, status              reflect.Type
		// fields of the Go type the schema leaves out on purpose
		omit []string
	}{
		{"corral.dev_protectedtargets.yaml", "ProtectedTarget", "protectedtargets", "Cluster", reflect.TypeFor[ProtectedTarget](), nil, []string{"spec.name"}},
		{"corral.dev_accessrules.yaml", "AccessRule", "accessrules", "Namespaced", reflect.TypeFor[AccessRule](), nil, []string{"spec.name"}},
		{"corral.dev_accessrequests.yaml", "AccessRequest", "accessrequests", "Namespaced", reflect.TypeFor[AccessRequest](), reflect.TypeFor[AccessRequestStatus](), nil},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			c := loadCRD(t, tc.file)
			s := c.Spec
			if c.APIVersion != "apiextensions.k8s.io/v1" || c.Kind != "CustomResourceDefinition" || c.Metadata.Name != tc.plural+"."+Group ||
				s.Group != Group || s.Names.Kind != tc.kind || s.Names.Plural != tc.plural || s.Names.ListKind != ListKinds[GroupVersion.WithResource(tc.plural)] || s.Scope != tc.scope {
				t.Fatalf("identity: %+v", c)
			}
			if len(s.Versions) != 1 || s.Versions[0].Name != Version || !s.Versions[0].Served || !s.Versions[0].Storage {
				t.Fatalf("versions: %+v", s.Versions)
			}
			v := s.Versions[0]
			if (v.Subresources != nil && v.Subresources.Status != nil) != (tc.status != nil) {
				t.Errorf("status subresource: %v", v.Subresources)
			}
			if len(v.AdditionalPrinterColumns) == 0 {
				t.Error("no printer columns")
			}
			root := v.Schema.OpenAPIV3Schema
			if root == nil {
				t.Fatal("no schema")
			}
			structural(t, "", root)
			for _, col := range v.AdditionalPrinterColumns {
				if !resolves(root, col.JSONPath) {
					t.Errorf("printer column %s: %s is not in the schema", col.Name, col.JSONPath)
				}
			}
			typ, _ := tc.spec.FieldByName("Spec")
			compare(t, "spec", root.Properties["spec"], typ.Type, tc.omit)
			if tc.status != nil {
				compare(t, "status", root.Properties["status"], tc.status, tc.omit)
			}
		})
	}
}

// structural checks what the API server demands of a CRD schema: a type
// at every node, properties only on objects, items on arrays.
func structural(t *testing.T, path string, s *schemaProps) {
	t.Helper()
	if s.Type == "" {
		t.Errorf("%s: no type", path)
	}
	if len(s.Properties) > 0 && s.Type != "object" {
		t.Errorf("%s: properties on a %s", path, s.Type)
	}
	if s.Type == "array" && s.Items == nil {
		t.Errorf("%s: an array without items", path)
	}
	for _, r := range s.Required {
		if _, ok := s.Properties[r]; !ok {
			t.Errorf("%s: required %q is not a property", path, r)
		}
	}
	for name, p := range s.Properties {
		structural(t, path+"."+name, p)
	}
	if s.Items != nil {
		structural(t, path+"[]", s.Items)
	}
	if s.AdditionalProperties != nil {
		structural(t, path+".*", s.AdditionalProperties)
	}
}

func resolves(s *schemaProps, jsonPath string) bool {
	parts := strings.Split(strings.TrimPrefix(jsonPath, "."), ".")
	if parts[0] == "metadata" {
		return true
	}
	for _, p := range parts {
		if s = s.Properties[p]; s == nil {
			return false
		}
	}
	return true
}

// compare walks a Go type and its schema together: every JSON field of
// the type is a property of the right type, and every property is a field.
func compare(t *testing.T, path string, s *schemaProps, typ reflect.Type, omit []string) {
	t.Helper()
	if s == nil {
		t.Errorf("%s: not in the schema", path)
		return
	}
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	want := ""
	switch {
	case typ == reflect.TypeFor[time.Time]():
		want = "string"
		if s.Format != "date-time" {
			t.Errorf("%s: a time without format date-time", path)
		}
	case typ.Kind() == reflect.String:
		want = "string"
	case typ.Kind() == reflect.Bool:
		want = "boolean"
	case typ.Kind() >= reflect.Int && typ.Kind() <= reflect.Uint64:
		want = "integer"
	case typ.Kind() == reflect.Slice:
		want = "array"
		if s.Items != nil {
			compare(t, path+"[]", s.Items, typ.Elem(), omit)
		}
	case typ.Kind() == reflect.Map:
		want = "object"
		if s.AdditionalProperties == nil {
			t.Errorf("%s: a map without additionalProperties", path)
		} else {
			compare(t, path+".*", s.AdditionalProperties, typ.Elem(), omit)
		}
	case typ.Kind() == reflect.Struct:
		want = "object"
		fields := map[string]reflect.Type{}
		for f := range typ.Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" || !f.IsExported() || slices.Contains(omit, path+"."+name) {
				continue
			}
			fields[name] = f.Type
		}
		for name, ft := range fields {
			compare(t, path+"."+name, s.Properties[name], ft, omit)
		}
		for name := range s.Properties {
			if _, ok := fields[name]; !ok {
				t.Errorf("%s.%s: in the schema but not a field of %s", path, name, typ)
			}
		}
	default:
		t.Errorf("%s: no schema type for %s", path, typ)
	}
	if s.Type != want {
		t.Errorf("%s: schema type %q, Go type %s wants %q", path, s.Type, typ, want)
	}
}
