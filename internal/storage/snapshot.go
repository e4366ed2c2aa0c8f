package storage

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	clientsnapshot "go.etcd.io/etcd/client/v3/snapshot"
	"go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.uber.org/zap"
)

// Snapshots are files of one folder, each an etcd snapshot named
// NAME-NODE-UNIXTIME (as k3s names them), with NAME.sha256 beside it (the
// file's checksum, in sha256sum's format) and, when the cluster encrypts
// Secrets, NAME.encryption-config.yaml (the keys its Secrets need).

// Snapshot describes one snapshot file.
type Snapshot struct {
	Name    string
	Path    string
	Size    int64
	Created time.Time
}

// Sidecar suffixes of a snapshot file.
const (
	checksumSuffix   = ".sha256"
	encryptionSuffix = ".encryption-config.yaml"
)

// snapshotName is a valid --name: what a file name and a k3s user accept.
var snapshotName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]*$`)

// SaveOptions say what to snapshot and where.
type SaveOptions struct {
	// Endpoints reach the etcd to snapshot.
	Endpoints []string
	// Dir is the snapshots folder.
	Dir string
	// Name (default "on-demand") and Node make the file name.
	Name, Node string
	// EncryptionConfig, when it exists, is copied beside the snapshot.
	EncryptionConfig string
	Now              time.Time
}

// Save streams a snapshot of etcd into a new file, verifies etcd's
// checksum of it, and writes its sidecars. A failure leaves no file.
func Save(ctx context.Context, o SaveOptions) (Snapshot, error) {
	name := o.Name
	if name == "" {
		name = "on-demand"
	}
	if !snapshotName.MatchString(name) {
		return Snapshot{}, fmt.Errorf("snapshot name %q: use letters, digits, '.', '_' and '-'", name)
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return Snapshot{}, err
	}
	file := fmt.Sprintf("%s-%s-%d", name, o.Node, o.Now.Unix())
	path := filepath.Join(o.Dir, file)
	if _, err := os.Stat(path); err == nil {
		return Snapshot{}, fmt.Errorf("snapshot %s already exists", file)
	}
	cfg := clientv3.Config{Endpoints: o.Endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()}
	// SaveWithVersion writes path.part, checks etcd's checksum of the
	// stream, and renames it.
	if _, err := clientsnapshot.SaveWithVersion(ctx, zap.NewNop(), cfg, path); err != nil {
		os.Remove(path + ".part")
		return Snapshot{}, fmt.Errorf("save snapshot from etcd at %v: %w", o.Endpoints, err)
	}
	sum, err := fileSHA256(path)
	if err == nil {
		err = writeFile(path+checksumSuffix, []byte(sum+"  "+file+"\n"))
	}
	if err == nil && o.EncryptionConfig != "" {
		var keys []byte
		if keys, err = os.ReadFile(o.EncryptionConfig); err == nil {
			err = writeFile(path+encryptionSuffix, keys)
		} else if errors.Is(err, os.ErrNotExist) {
			err = nil
		}
	}
	if err != nil {
		removeSnapshot(path)
		return Snapshot{}, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return Snapshot{}, err
	}
	return Snapshot{Name: file, Path: path, Size: fi.Size(), Created: o.Now}, nil
}

// ListSnapshots lists the folder's snapshots, newest first.
func ListSnapshots(dir string) ([]Snapshot, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var list []Snapshot
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || strings.HasSuffix(n, checksumSuffix) || strings.HasSuffix(n, encryptionSuffix) || strings.HasSuffix(n, ".part") || strings.HasPrefix(n, ".") {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		s := Snapshot{Name: n, Path: filepath.Join(dir, n), Size: fi.Size(), Created: fi.ModTime()}
		if i := strings.LastIndexByte(n, '-'); i > 0 {
			if sec, err := strconv.ParseInt(n[i+1:], 10, 64); err == nil {
				s.Created = time.Unix(sec, 0)
			}
		}
		list = append(list, s)
	}
	sort.SliceStable(list, func(i, j int) bool { return list[i].Created.After(list[j].Created) })
	return list, nil
}

// DeleteSnapshot removes a snapshot of the folder and its sidecars.
func DeleteSnapshot(dir, name string) error {
	if name != filepath.Base(name) || strings.HasPrefix(name, ".") {
		return fmt.Errorf("snapshot %q: a name from `skiff etcd-snapshot ls`, not a path", name)
	}
	path := filepath.Join(dir, name)
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("snapshot %s: %w", name, err)
	}
	return removeSnapshot(path)
}

func removeSnapshot(path string) error {
	err := os.Remove(path)
	for _, s := range []string{checksumSuffix, encryptionSuffix} {
		if e := os.Remove(path + s); e != nil && !errors.Is(e, os.ErrNotExist) && err == nil {
			err = e
		}
	}
	return err
}

// PruneSnapshots deletes the oldest snapshots named NAME-NODE-… beyond the
// newest keep, and returns the names it deleted.
func PruneSnapshots(dir, name, node string, keep int) ([]string, error) {
	list, err := ListSnapshots(dir)
	if err != nil {
		return nil, err
	}
	prefix := name + "-" + node + "-"
	var deleted []string
	kept := 0
	for _, s := range list {
		if !strings.HasPrefix(s.Name, prefix) {
			continue
		}
		if kept < keep {
			kept++
			continue
		}
		if err := removeSnapshot(s.Path); err != nil {
			return deleted, err
		}
		deleted = append(deleted, s.Name)
	}
	return deleted, nil
}

// VerifySnapshot checks a snapshot file before anything is changed: its
// .sha256 sidecar when there is one, the checksum etcd appends to the
// database it streams into a snapshot, and the database's structure. A
// truncated or corrupt file fails here. The file is read once for both
// checksums.
func VerifySnapshot(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	n := fi.Size()
	// whole is the sidecar's checksum; body the one etcd appends in tail.
	whole, body := sha256.New(), sha256.New()
	bodySize := max(n-sha256.Size, 0)
	if _, err := io.Copy(io.MultiWriter(whole, body), bufio.NewReaderSize(io.NewSectionReader(f, 0, bodySize), 1<<20)); err != nil {
		return err
	}
	tail := make([]byte, n-bodySize)
	if _, err := f.ReadAt(tail, bodySize); err != nil && len(tail) > 0 {
		return err
	}
	whole.Write(tail)
	if want, err := os.ReadFile(path + checksumSuffix); err == nil {
		fields := strings.Fields(string(want))
		if got := hex.EncodeToString(whole.Sum(nil)); len(fields) == 0 || fields[0] != got {
			return fmt.Errorf("snapshot %s: its checksum is %s, %s records %s: the file is corrupt or truncated", path, got, path+checksumSuffix, strings.Join(fields[:min(1, len(fields))], ""))
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if n%512 != sha256.Size {
		return fmt.Errorf("snapshot %s: %d bytes is not the size of an etcd snapshot (a database of 512-byte multiples and its checksum): the file is truncated, or not a snapshot", path, n)
	}
	if !bytes.Equal(body.Sum(nil), tail) {
		return fmt.Errorf("snapshot %s: etcd's checksum at its end does not match its content: the file is corrupt", path)
	}
	return status(path)
}

// status opens the database read-only and walks it; bbolt panics on some
// corruptions, reported here as an error.
func status(path string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("snapshot %s is not a valid etcd database: %v", path, r)
		}
	}()
	if _, err := snapshot.NewV3(zap.NewNop()).Status(path); err != nil {
		return fmt.Errorf("snapshot %s is not a valid etcd database: %w", path, err)
	}
	return nil
}

// RestoreRevisionBump is added to every revision of a restored snapshot, as
// Kubernetes' etcd documentation advises, so that no resourceVersion a
// client saw before goes backwards; the snapshot's history is marked
// compacted, so watchers relist.
const RestoreRevisionBump = 1_000_000_000

// Restore replaces the embedded etcd's data in etcdDir with the snapshot
// at path, which the caller has checked with VerifySnapshot (before
// changing anything else; etcd's restore checks the appended hash again).
// It restores into a new folder first; only then is the old data moved
// aside (to etcdDir-old-UNIXTIME, returned) and the new folder put in its
// place, so a failure changes nothing.
func Restore(path, etcdDir string, now time.Time) (old string, err error) {
	tmp := etcdDir + ".restoring"
	if err := os.RemoveAll(tmp); err != nil {
		return "", err
	}
	peer, err := freeURL()
	if err != nil {
		return "", err
	}
	err = snapshot.NewV3(zap.NewNop()).Restore(snapshot.RestoreConfig{
		SnapshotPath:        path,
		Name:                memberName,
		OutputDataDir:       tmp,
		PeerURLs:            []string{peer.String()},
		InitialCluster:      memberName + "=" + peer.String(),
		InitialClusterToken: "etcd-cluster",
		RevisionBump:        RestoreRevisionBump,
		MarkCompacted:       true,
	})
	if err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("restore %s: %w", path, err)
	}
	if _, err := os.Stat(etcdDir); err == nil {
		old = fmt.Sprintf("%s-old-%d", etcdDir, now.Unix())
		if err := os.Rename(etcdDir, old); err != nil {
			return "", err
		}
	}
	if err := os.Rename(tmp, etcdDir); err != nil {
		return old, err
	}
	return old, nil
}

// SnapshotEncryptionConfig is the encryption configuration saved with the
// snapshot at path ("" when there is none).
func SnapshotEncryptionConfig(path string) string {
	if _, err := os.Stat(path + encryptionSuffix); err == nil {
		return path + encryptionSuffix
	}
	return ""
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, bufio.NewReaderSize(f, 1<<20)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func writeFile(path string, data []byte) error {
	return os.WriteFile(path, data, 0o600)
}
