package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/bottle-dev/bottle/backends"
	"github.com/bottle-dev/bottle/engine"
	srt "github.com/bottle-dev/bottle/sidecars/runtime"
)

// LsCmd lists bottles.
type LsCmd struct {
	Format string `enum:"text,json" default:"text" help:"Output format: text or json."`
}

type lsRow struct {
	Slug    string `json:"slug"`
	Backend string `json:"backend"`
	Profile string `json:"profile"`
	Started string `json:"started"`
	// State is "running"; "orphaned" when its controller (bottle start)
	// died while its sandbox still runs; or "stopped" for what a killed
	// run left behind. bottle cleanup removes orphaned and stopped ones.
	State string `json:"state"`
}

// Run lists running bottles and the remains of stopped ones.
func (c *LsCmd) Run(g *Globals) error {
	rows, err := listBottles(g)
	if err != nil {
		return err
	}
	if c.Format == "json" {
		if rows == nil {
			rows = []lsRow{}
		}
		enc := json.NewEncoder(g.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	// A profile's path is the user's, but its bytes reach the terminal.
	tw := tabwriter.NewWriter(visibleWriter{g.Stdout}, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SLUG\tBACKEND\tSTATE\tSTARTED\tPROFILE")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Slug, r.Backend, r.State, r.Started, r.Profile)
	}
	return tw.Flush()
}

// listBottles merges the state directories with the labelled resources of
// every backend.
func listBottles(g *Globals) ([]lsRow, error) {
	home, err := stateHome()
	if err != nil {
		return nil, err
	}
	entries, err := backends.Scan(home)
	if err != nil {
		return nil, err
	}
	bySlug := map[string]*lsRow{}
	for _, e := range entries {
		r := &lsRow{Slug: e.Slug, State: "stopped"}
		if e.Running {
			r.State = "running"
		}
		if e.Info != nil {
			r.Backend, r.Profile, r.Started = e.Info.Backend, e.Info.Profile, e.Info.Started.Format(time.RFC3339)
		}
		bySlug[e.Slug] = r
	}
	res, err := allResources(g)
	if err != nil {
		return nil, err
	}
	owner := backends.OwnerOf(home)
	for _, rs := range res {
		if !engine.Mine(rs, owner) {
			continue // another user's, or another state home's
		}
		r, ok := bySlug[rs.Slug]
		if !ok {
			r = &lsRow{Slug: rs.Slug, Backend: rs.Backend, State: "stopped"}
			bySlug[rs.Slug] = r
		}
		if rs.Running && r.State != "running" {
			r.State = "orphaned"
		}
	}
	var rows []lsRow
	for _, r := range bySlug {
		rows = append(rows, *r)
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Slug < rows[j].Slug })
	return rows, nil
}

func allResources(g *Globals) ([]backends.Resource, error) { return engine.Resources(g.Ctx) }

// findBottle returns the state entry of slug.
func findBottle(slug string) (*backends.Entry, error) {
	home, err := stateHome()
	if err != nil {
		return nil, err
	}
	entries, err := backends.Scan(home)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if e.Slug == slug {
			return &e, nil
		}
	}
	return nil, usageErr(fmt.Errorf("no bottle %q; bottle ls lists them", slug))
}

// StopCmd stops a running bottle.
type StopCmd struct {
	Slug    string        `arg:"" help:"The bottle to stop (see bottle ls)."`
	Timeout time.Duration `default:"60s" help:"How long to wait for the bottle to tear down."`
}

// Run signals the bottle's process and waits until it has torn down.
func (c *StopCmd) Run(g *Globals) error {
	e, err := findBottle(c.Slug)
	if err != nil {
		return err
	}
	if !e.Running || e.Info == nil {
		return fmt.Errorf("bottle %s is not running; bottle cleanup removes what it left behind", c.Slug)
	}
	if err := syscall.Kill(e.Info.PID, syscall.SIGTERM); err != nil {
		return fmt.Errorf("stop bottle %s (pid %d): %w", c.Slug, e.Info.PID, err)
	}
	deadline := time.Now().Add(c.Timeout)
	for backends.Locked(e.Dir) {
		if time.Now().After(deadline) {
			return fmt.Errorf("bottle %s did not stop within %s", c.Slug, c.Timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return writeLine(g.Stderr, "bottle: stopped %s", c.Slug)
}

// LogsCmd prints a bottle's logs.
type LogsCmd struct {
	Slug   string `arg:"" help:"The bottle (see bottle ls)."`
	Denied bool   `help:"Print the egress proxy's refusals (JSON lines) instead of the sidecar log."`
	Follow bool   `short:"f" help:"Keep printing new lines until the bottle stops."`
}

// Run copies the log to stdout.
func (c *LogsCmd) Run(g *Globals) error {
	e, err := findBottle(c.Slug)
	if err != nil {
		// An ended bottle's record is in the history.
		home, herr := stateHome()
		if herr != nil {
			return err
		}
		dir := backends.History(home, c.Slug)
		if st, serr := os.Stat(dir); serr != nil || !st.IsDir() {
			return err
		}
		e = &backends.Entry{Dir: dir, Slug: c.Slug}
	}
	name := srt.LogFile
	if c.Denied {
		name = srt.EgressLogFile
	}
	f, err := os.Open(filepath.Join(e.Dir, name))
	if errors.Is(err, os.ErrNotExist) {
		if !c.Follow {
			return nil
		}
	} else if err != nil {
		return err
	}
	var r *bufio.Reader
	if f != nil {
		defer f.Close()
		r = bufio.NewReader(f)
	}
	for {
		if r != nil {
			if err := copyLines(g.Stdout, r, c.Denied); err != nil {
				return err
			}
		}
		if !c.Follow || !backends.Locked(e.Dir) || g.Ctx.Err() != nil {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
		if r == nil {
			if f, err = os.Open(filepath.Join(e.Dir, name)); err == nil {
				defer f.Close()
				r = bufio.NewReader(f)
			}
		}
	}
}

// copyLines copies complete lines; with denied, only refusals.
func copyLines(w io.Writer, r *bufio.Reader, denied bool) error {
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			// An incomplete last line is read again on the next pass.
			if len(line) > 0 {
				return errors.Join(err, errors.New("unterminated line"))
			}
			return nil
		}
		if denied {
			var ev struct {
				Allowed bool `json:"allowed"`
			}
			if json.Unmarshal([]byte(line), &ev) != nil || ev.Allowed {
				continue
			}
		}
		if _, err := io.WriteString(w, line); err != nil {
			return err
		}
	}
}

// CleanupCmd removes what stopped bottles left behind.
type CleanupCmd struct {
	DryRun  bool `help:"Print what would be removed; remove nothing."`
	History bool `help:"Also remove the records (plans and logs) of ended bottles, which bottle logs reads."`
}

// Run removes every labelled resource and state directory whose bottle no
// longer runs, printing each; a second run finds nothing.
func (c *CleanupCmd) Run(g *Globals) error {
	home, err := stateHome()
	if err != nil {
		return err
	}
	verb := "removed"
	if c.DryRun {
		verb = "would remove"
	}
	err = engine.Cleanup(g.Ctx, home, c.DryRun, func(r engine.Removed) {
		fmt.Fprintf(g.Stdout, "%s %s\n", verb, r)
	})
	if c.History {
		hist := filepath.Join(home, backends.HistoryDir)
		if des, _ := os.ReadDir(hist); len(des) > 0 {
			if !c.DryRun {
				if rerr := os.RemoveAll(hist); rerr != nil {
					return errors.Join(err, rerr)
				}
			}
			fmt.Fprintf(g.Stdout, "%s the records of %d ended bottle(s) in %s\n", verb, len(des), hist)
		}
	}
	return err
}
