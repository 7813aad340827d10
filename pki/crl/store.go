package crl

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/pkiagent/pkiagent/internal/persist"
)

// MasterFile is the name, inside Config.Dir, of the master list: every
// revoked serial known from every source, with the per-source metadata
// needed to resume polling (validators, CRLNumber, dates). It is written
// atomically (temp file, fsync, rename, fsync of the directory), mode 0600.
//
// Format: the magic "PKACRL1\n", a big-endian uint32 length and a JSON
// header describing the sources and their serial arenas, the arenas
// (sorted fixed-width big-endian serials) in header order, then the
// SHA-256 of everything before it.
const MasterFile = "master.crlidx"

const masterMagic = "PKACRL1\n"

// held is the verified list a source currently holds.
type held struct {
	rawIssuer    []byte
	issuer       string // RFC 4514
	ca           string // OpenSSL one-line form of the issuer
	thisUpdate   time.Time
	nextUpdate   time.Time
	number       *big.Int
	etag         string
	lastModified string
	derHash      [32]byte
	size         int64
	entries      int
	serials      *SerialSet
	lastSuccess  time.Time
}

type storedBucket struct {
	Width int `json:"width"`
	Count int `json:"count"`
}

type storedSource struct {
	URL          string         `json:"url"`
	Learned      bool           `json:"learned,omitempty"`
	RawIssuer    []byte         `json:"raw_issuer"`
	ThisUpdate   time.Time      `json:"this_update"`
	NextUpdate   time.Time      `json:"next_update,omitzero"`
	Number       string         `json:"crl_number,omitempty"`
	ETag         string         `json:"etag,omitempty"`
	LastModified string         `json:"last_modified,omitempty"`
	DERHash      []byte         `json:"der_sha256"`
	Size         int64          `json:"size"`
	Entries      int            `json:"entries"`
	LastSuccess  time.Time      `json:"last_success,omitzero"`
	Zero         bool           `json:"zero,omitempty"`
	Buckets      []storedBucket `json:"buckets"`
}

type storedHeader struct {
	Written time.Time      `json:"written"`
	Sources []storedSource `json:"sources"`
}

// storedList is one source as read back from disk.
type storedList struct {
	url     string
	learned bool
	h       *held
}

// writeMaster replaces dir/MasterFile with lists, atomically.
func writeMaster(dir string, now time.Time, lists []storedList) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("CRL state directory: %w", err)
	}
	hdr := storedHeader{Written: now.UTC()}
	for _, l := range lists {
		h := l.h
		s := storedSource{
			URL: l.url, Learned: l.learned, RawIssuer: h.rawIssuer,
			ThisUpdate: h.thisUpdate, NextUpdate: h.nextUpdate,
			ETag: h.etag, LastModified: h.lastModified, DERHash: h.derHash[:],
			Size: h.size, Entries: h.entries, LastSuccess: h.lastSuccess,
			Zero: h.serials.zero,
		}
		if h.number != nil {
			s.Number = h.number.String()
		}
		for _, b := range h.serials.buckets {
			s.Buckets = append(s.Buckets, storedBucket{Width: b.width, Count: b.count()})
		}
		hdr.Sources = append(hdr.Sources, s)
	}
	js, err := json.Marshal(hdr)
	if err != nil {
		return fmt.Errorf("encode the CRL master list: %w", err)
	}
	tmp, err := os.CreateTemp(dir, persist.TempPattern(MasterFile))
	if err != nil {
		return fmt.Errorf("write the CRL master list: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	sum := sha256.New()
	w := bufio.NewWriterSize(io.MultiWriter(tmp, sum), 1<<20)
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(js)))
	w.WriteString(masterMagic)
	w.Write(n[:])
	w.Write(js)
	for _, l := range lists {
		for _, b := range l.h.serials.buckets {
			w.Write(b.data)
		}
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write the CRL master list: %w", err)
	}
	if _, err := tmp.Write(sum.Sum(nil)); err != nil {
		return fmt.Errorf("write the CRL master list: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("sync the CRL master list: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write the CRL master list: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, MasterFile)); err != nil {
		return fmt.Errorf("replace the CRL master list: %w", err)
	}
	ok = true
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync the CRL state directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync the CRL state directory: %w", err)
	}
	return nil
}

// readMaster loads dir/MasterFile; a missing file is an empty list.
func readMaster(dir string) ([]storedList, error) {
	data, err := os.ReadFile(filepath.Join(dir, MasterFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the CRL master list: %w", err)
	}
	return decodeMaster(data)
}

func decodeMaster(data []byte) ([]storedList, error) {
	bad := func(what string) error {
		return fmt.Errorf("%w: the CRL master list %s is damaged: %s", ErrMalformed, MasterFile, what)
	}
	if len(data) < len(masterMagic)+4+sha256.Size || string(data[:len(masterMagic)]) != masterMagic {
		return nil, bad("bad header")
	}
	body, trailer := data[:len(data)-sha256.Size], data[len(data)-sha256.Size:]
	if sum := sha256.Sum256(body); !bytes.Equal(sum[:], trailer) {
		return nil, bad("checksum mismatch")
	}
	rest := body[len(masterMagic):]
	hl := int(binary.BigEndian.Uint32(rest))
	rest = rest[4:]
	if hl > len(rest) {
		return nil, bad("header length")
	}
	var hdr storedHeader
	if err := json.Unmarshal(rest[:hl], &hdr); err != nil {
		return nil, bad(err.Error())
	}
	rest = rest[hl:]
	var out []storedList
	for _, s := range hdr.Sources {
		h := &held{
			rawIssuer: s.RawIssuer, issuer: IssuerString(s.RawIssuer), ca: OneLine(s.RawIssuer),
			thisUpdate: s.ThisUpdate, nextUpdate: s.NextUpdate, etag: s.ETag, lastModified: s.LastModified,
			size: s.Size, entries: s.Entries, lastSuccess: s.LastSuccess,
			serials: &SerialSet{zero: s.Zero},
		}
		copy(h.derHash[:], s.DERHash)
		if s.Number != "" {
			n, ok := new(big.Int).SetString(s.Number, 10)
			if !ok {
				return nil, bad("CRL number")
			}
			h.number = n
		}
		prevW := 0
		for _, b := range s.Buckets {
			if b.Width <= prevW || b.Width > MaxSerialLen || b.Count < 1 || b.Count > len(rest)/b.Width {
				return nil, bad("serial arena sizes")
			}
			prevW = b.Width
			bk := bucket{width: b.Width, data: rest[: b.Count*b.Width : b.Count*b.Width]}
			rest = rest[b.Count*b.Width:]
			for i := 1; i < b.Count; i++ {
				if bytes.Compare(bk.at(i-1), bk.at(i)) >= 0 {
					return nil, bad("serial arena order")
				}
			}
			bk.index()
			h.serials.buckets = append(h.serials.buckets, bk)
		}
		out = append(out, storedList{url: s.URL, learned: s.Learned, h: h})
	}
	if len(rest) != 0 {
		return nil, bad("trailing data")
	}
	return out, nil
}
