// Package httpjson writes the JSON answers of the HTTP packages
// (httpquery, debughttp): one encoding, one set of headers, one error
// shape.
package httpjson

import (
	"encoding/json"
	"net/http"
)

// Write encodes v as JSON and writes it with status. It encodes before it
// writes the status, so that a value encoding/json cannot render becomes
// a 500 with an error body. Answers are live data: never cached.
func Write(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(map[string]string{"error": "encode response: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// Error writes err as {"error": "..."} with status.
func Error(w http.ResponseWriter, status int, err error) {
	Write(w, status, map[string]string{"error": err.Error()})
}
