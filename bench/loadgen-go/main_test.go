package main

import (
	"strings"
	"testing"
	"time"
)

func TestReadReply(t *testing.T) {
	seed := strings.Repeat("QUJD", 70_000) // 280 KB of base64, as a seed file
	cases := []struct {
		name, reply, reason string
		retryAfter          time.Duration
	}{
		{"assignment, type first", `{"type":"assignment","id":1,"files":{"state.xml":"` + seed + `"}}`, "", 0},
		{"assignment, type last", `{"id":1,"files":{"state.xml":"` + seed + `"},"type":"assignment"}`, "", 0},
		{"refusal with a delay", `{"type":"error","id":1,"code":"no_streams_available","retry_after_s":2.5}`, "error no_streams_available", 2500 * time.Millisecond},
		{"refusal without one", `{"code":"rate_limited","type":"error"}`, "error rate_limited", 0},
		{"another message", `{"type":"welcome"}`, "unexpected welcome", 0},
		{"not an object", `["assignment"]`, "bad reply", 0},
		{"cut short", `{"type":"assi`, "bad reply", 0},
		{"not JSON", `type=assignment`, "bad reply", 0},
	}
	for _, c := range cases {
		reason, retryAfter := readReply(strings.NewReader(c.reply))
		if reason != c.reason || retryAfter != c.retryAfter {
			t.Errorf("%s: got %q, %v; want %q, %v", c.name, reason, retryAfter, c.reason, c.retryAfter)
		}
	}
}
