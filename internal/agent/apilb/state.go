package apilb

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
)

// state is the content of the state file.
type state struct {
	// Servers are the learned servers, host:port each.
	Servers []string `json:"servers"`
}

// loadState reads the learned servers; a missing file holds none.
func loadState(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var s state
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, err
	}
	return unique(s.Servers), nil
}

// saveState replaces the file with the learned servers, atomically.
func saveState(path string, servers []string) error {
	data, err := json.Marshal(state{Servers: servers})
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
