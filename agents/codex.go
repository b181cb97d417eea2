package agents

// Codex is OpenAI's Codex CLI (@openai/codex).
var Codex = &Provider{
	Name:     "codex",
	Binary:   "codex",
	Headless: func(prompt string) []string { return []string{"codex", "exec", prompt} },
}

func init() { register(Codex) }
