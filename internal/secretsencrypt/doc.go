// Package secretsencrypt owns the encryption of Secrets at rest: the
// EncryptionConfiguration file kube-apiserver reads
// (--encryption-provider-config, reloaded automatically), its keys, and
// their rotation.
//
// The file is the whole state. Its secretbox keys (XSalsa20 and Poly1305, 32
// random bytes each) are listed primary first; with encryption enabled the
// secretbox provider comes before identity, so new writes are encrypted with
// the primary key and every listed key, or plain text written before
// encryption was enabled, still reads. Disabled, identity comes first: new
// writes are plain, old ciphertext still reads. Nothing is ever unreadable
// because a key left the file too early: a key leaves only after every
// Secret has been rewritten with its successor.
//
// Rotation (Rotator) is four steps, each safe to interrupt and resumed by
// running it again: a new key is added after the primary; once every API
// server has loaded that file (its
// apiserver_encryption_config_controller_last_config_info metric names the
// file's hash), the new key is made the primary; once that is loaded, every
// Secret is written back unchanged, which the API server's storage
// re-encrypts because the old key marks the stored value stale; then the old
// keys are dropped. The first step matters with several servers (each with
// its copy of the file, handed on by Rotator.Publish): none may meet a
// Secret encrypted with a key it has not loaded.
//
// It does not own the API server's flags (internal/server passes the file)
// nor the command line (cmd/skiff).
package secretsencrypt
