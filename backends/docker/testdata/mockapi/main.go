// Command mockapi is the agents' test destination: an HTTPS server with
// the certificate and key it is given that answers as Anthropic's
// Messages API does, for the real Claude Code client, and as OpenAI's
// Responses API streams (POST /v1/responses), for the real Codex client. It wants the key it
// is told in x-api-key (or as a bearer token) and answers 401 without it.
// Its first answer to a prompt holding CALL-POLICY is a call of the
// supervise MCP server's current_policy tool; once the tool's result comes
// back it answers "POLICY-SEEN" with the result's start; any other prompt
// gets "PONG-from-the-mock". Each request is logged to stdout as one JSON
// line: when (unix nanoseconds), method, path, host, whether it was authorized, whether any header
// held a bottle placeholder, and the names of the tools offered; never a
// header's value.
//
//	mockapi -addr :443 -cert cert.pem -key key.pem -key-file key
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strings"
	"time"
)

const policyTool = "mcp__supervise__current_policy"

func main() {
	addr := flag.String("addr", ":443", "listen address")
	cert := flag.String("cert", "", "certificate (PEM)")
	key := flag.String("key", "", "key (PEM)")
	keyFile := flag.String("key-file", "", "file holding the API key the server wants")
	flag.Parse()
	want, err := os.ReadFile(*keyFile)
	if err != nil {
		log.Fatal(err)
	}
	apiKey := strings.TrimSpace(string(want))
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		authorized := r.Header.Get("X-Api-Key") == apiKey || r.Header.Get("Authorization") == "Bearer "+apiKey
		placeholder := false
		for _, vv := range r.Header {
			for _, v := range vv {
				placeholder = placeholder || strings.Contains(v, "BOTTLEPH")
			}
		}
		var req struct {
			Model    string `json:"model"`
			Stream   bool   `json:"stream"`
			Messages []struct {
				Role    string          `json:"role"`
				Content json.RawMessage `json:"content"`
			} `json:"messages"`
			Tools []struct {
				Name string `json:"name"`
			} `json:"tools"`
		}
		json.Unmarshal(body, &req)
		var tools []string
		for _, t := range req.Tools {
			tools = append(tools, t.Name)
		}
		line, _ := json.Marshal(map[string]any{"time_ns": time.Now().UnixNano(), "method": r.Method, "path": r.URL.Path, "host": r.Host,
			"authorized": authorized, "placeholder": placeholder, "tools": tools})
		fmt.Println(string(line))
		if !authorized {
			apiError(w, http.StatusUnauthorized, "authentication_error", "invalid x-api-key")
			return
		}
		if r.Method == http.MethodPost && r.URL.Path == "/v1/responses" {
			responses(w)
			return
		}
		if r.Method != http.MethodPost || r.URL.Path != "/v1/messages" || req.Model == "" {
			apiError(w, http.StatusNotFound, "not_found_error", "not found: "+r.URL.Path)
			return
		}
		all := string(body)
		var blocks []map[string]any
		switch {
		case strings.Contains(all, `"tool_result"`):
			// The tool's result is in the last message: answer with its start.
			last := string(req.Messages[len(req.Messages)-1].Content)
			if len(last) > 300 {
				last = last[:300]
			}
			blocks = []map[string]any{{"type": "text", "text": "POLICY-SEEN " + last}}
		case strings.Contains(all, "CALL-POLICY") && strings.Contains(all, policyTool):
			blocks = []map[string]any{{"type": "tool_use", "id": "toolu_mock01", "name": policyTool, "input": map[string]any{}}}
		default:
			blocks = []map[string]any{{"type": "text", "text": "PONG-from-the-mock"}}
		}
		stop := "end_turn"
		if blocks[0]["type"] == "tool_use" {
			stop = "tool_use"
		}
		if !req.Stream {
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]any{"id": "msg_mock", "type": "message", "role": "assistant", "model": req.Model,
				"content": blocks, "stop_reason": stop, "stop_sequence": nil, "usage": map[string]any{"input_tokens": 12, "output_tokens": 14}})
			return
		}
		stream(w, req.Model, blocks[0], stop)
	})
	log.Fatal(http.ListenAndServeTLS(*addr, *cert, *key, nil))
}

// stream answers as the Messages API streams: server-sent events from
// message_start to message_stop, each flushed on its own.
func stream(w http.ResponseWriter, model string, block map[string]any, stop string) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	start := map[string]any{"type": "text", "text": ""}
	delta := map[string]any{"type": "text_delta", "text": block["text"]}
	if block["type"] == "tool_use" {
		start = map[string]any{"type": "tool_use", "id": block["id"], "name": block["name"], "input": map[string]any{}}
		delta = map[string]any{"type": "input_json_delta", "partial_json": "{}"}
	}
	events := []map[string]any{
		{"type": "message_start", "message": map[string]any{"id": "msg_mock", "type": "message", "role": "assistant", "model": model,
			"content": []any{}, "stop_reason": nil, "stop_sequence": nil, "usage": map[string]any{"input_tokens": 12, "output_tokens": 1}}},
		{"type": "content_block_start", "index": 0, "content_block": start},
		{"type": "content_block_delta", "index": 0, "delta": delta},
		{"type": "content_block_stop", "index": 0},
		{"type": "message_delta", "delta": map[string]any{"stop_reason": stop, "stop_sequence": nil}, "usage": map[string]any{"output_tokens": 14}},
		{"type": "message_stop"},
	}
	for _, ev := range events {
		data, _ := json.Marshal(ev)
		fmt.Fprintf(w, "event: %s\ndata: %s\n\n", ev["type"], data)
		w.(http.Flusher).Flush()
	}
}

// responses streams a Responses API answer: one assistant message
// "PONG-from-the-mock", as server-sent events.
func responses(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	msg := map[string]any{"type": "message", "role": "assistant", "id": "msg_mock", "status": "completed",
		"content": []any{map[string]any{"type": "output_text", "text": "PONG-from-the-mock", "annotations": []any{}}}}
	events := []map[string]any{
		{"type": "response.created", "response": map[string]any{"id": "resp_mock", "status": "in_progress"}},
		{"type": "response.output_item.added", "output_index": 0, "item": map[string]any{"type": "message", "role": "assistant", "id": "msg_mock", "status": "in_progress", "content": []any{}}},
		{"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "item_id": "msg_mock", "delta": "PONG-from-the-mock"},
		{"type": "response.output_item.done", "output_index": 0, "item": msg},
		{"type": "response.completed", "response": map[string]any{"id": "resp_mock", "status": "completed", "output": []any{msg},
			"usage": map[string]any{"input_tokens": 12, "input_tokens_details": map[string]any{"cached_tokens": 0},
				"output_tokens": 5, "output_tokens_details": map[string]any{"reasoning_tokens": 0}, "total_tokens": 17}}},
	}
	for _, ev := range events {
		data, _ := json.Marshal(ev)
		fmt.Fprintf(w, "event: %s\ndata: %s\n\n", ev["type"], data)
		w.(http.Flusher).Flush()
	}
}

func apiError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"type": "error", "error": map[string]any{"type": typ, "message": msg}})
}
