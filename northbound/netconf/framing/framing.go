// Package framing implements the NETCONF-over-SSH message framing of RFC 6242:
// the end-of-message delimiter "]]>]]>" of base:1.0 and the chunked framing
// of base:1.1, both bounded by a maximum message size.
//
// A Reader starts in end-of-message mode (hellos always use it) and is
// switched to chunked mode with SetChunked once both peers have advertised
// base:1.1; the same holds for a Writer. Any error returned by ReadMessage
// other than io.EOF leaves the stream at an unknown position: the caller must
// end the session.
package framing

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"
)

// DefaultMaxMessageSize is the message size limit (16 MiB) used when a Reader
// is given none. It bounds the content of one message, framing excluded.
const DefaultMaxMessageSize = 16 << 20

// EOM is the base:1.0 end-of-message delimiter.
const EOM = "]]>]]>"

// MaxChunkSize is the largest chunk-size RFC 6242 allows.
const MaxChunkSize = 4294967295

// maxInterMessageSpace bounds the whitespace skipped between two chunked
// messages.
const maxInterMessageSpace = 4096

// readStep is how much chunk data is read (and allocated) at a time, so a
// large declared chunk costs memory only as its bytes arrive.
const readStep = 64 << 10

var (
	// ErrMessageTooBig reports a message larger than the Reader's limit, or
	// one too large for a single chunk.
	ErrMessageTooBig = errors.New("message exceeds the size limit")
	// ErrBadChunk reports chunked framing that does not follow RFC 6242.
	ErrBadChunk = errors.New("bad chunked framing")
	// ErrEmptyMessage reports an attempt to write an empty message, which
	// chunked framing cannot carry (a "#0" chunk is invalid).
	ErrEmptyMessage = errors.New("empty message")
	// ErrDelimiterInMessage reports an attempt to write a message containing
	// "]]>]]>", or ending in "]]>", in end-of-message mode.
	ErrDelimiterInMessage = errors.New(`message contains the "]]>]]>" delimiter`)
)

var eom = []byte(EOM)

// Reader reads framed NETCONF messages. It is not safe for concurrent use.
type Reader struct {
	br      *bufio.Reader
	max     int
	chunked bool
}

// NewReader returns a Reader in end-of-message mode that refuses messages
// larger than maxSize bytes (DefaultMaxMessageSize when maxSize <= 0).
func NewReader(r io.Reader, maxSize int) *Reader {
	if maxSize <= 0 {
		maxSize = DefaultMaxMessageSize
	}
	return &Reader{br: bufio.NewReaderSize(r, 64<<10), max: maxSize}
}

// SetChunked switches the Reader to base:1.1 chunked framing. Bytes already
// buffered are read in the new mode.
func (r *Reader) SetChunked() { r.chunked = true }

// Chunked reports whether the Reader uses chunked framing.
func (r *Reader) Chunked() bool { return r.chunked }

// MaxSize returns the message size limit.
func (r *Reader) MaxSize() int { return r.max }

// ReadMessage returns the next message. It returns io.EOF when the stream ends
// cleanly between messages, an error wrapping io.ErrUnexpectedEOF when it ends
// inside one, ErrMessageTooBig for a message over the limit and ErrBadChunk
// for invalid chunked framing. The returned slice is owned by the caller.
//
// In end-of-message mode, whitespace around the delimiter is not part of the
// message (some clients pad it) and a message of only whitespace is skipped.
func (r *Reader) ReadMessage() ([]byte, error) {
	if r.chunked {
		return r.readChunked()
	}
	return r.readEOM()
}

func (r *Reader) readEOM() ([]byte, error) {
	var msg []byte
	for {
		if _, err := r.br.Peek(1); err != nil {
			if err == io.EOF {
				if len(bytes.TrimSpace(msg)) == 0 {
					return nil, io.EOF
				}
				return nil, fmt.Errorf("read message: %w before %q", io.ErrUnexpectedEOF, EOM)
			}
			return nil, fmt.Errorf("read message: %w", err)
		}
		buf, _ := r.br.Peek(r.br.Buffered())
		// end is how many bytes of buf complete the message and delimiter.
		end := -1
		if len(msg) > 0 {
			// A delimiter may straddle what was read and what is buffered.
			var tmp [2*len(EOM) - 2]byte
			t := append(tmp[:0], msg[max(0, len(msg)-len(eom)+1):]...)
			held := len(t)
			t = append(t, buf[:min(len(buf), len(eom)-1)]...)
			if i := bytes.Index(t, eom); i >= 0 {
				end = i + len(eom) - held
			}
		}
		if end < 0 {
			if i := bytes.Index(buf, eom); i >= 0 {
				end = i + len(eom)
			}
		}
		if end >= 0 {
			msg = append(msg, buf[:end]...)
			if _, err := r.br.Discard(end); err != nil {
				return nil, fmt.Errorf("read message: %w", err)
			}
			body := bytes.TrimSpace(msg[:len(msg)-len(eom)])
			if len(body) > r.max {
				return nil, fmt.Errorf("read message of %d bytes (limit %d): %w", len(body), r.max, ErrMessageTooBig)
			}
			if len(body) == 0 {
				msg = msg[:0]
				continue
			}
			return body, nil
		}
		msg = append(msg, buf...)
		if _, err := r.br.Discard(len(buf)); err != nil {
			return nil, fmt.Errorf("read message: %w", err)
		}
		// Whitespace before a message is not part of it: drop it now so a
		// peer streaming blanks cannot grow msg.
		if len(msg) > 0 && isSpace(msg[0]) {
			msg = bytes.TrimLeft(msg, " \t\r\n")
		}
		// The slack admits trailing padding before the delimiter.
		if len(msg) > r.max+len(eom)+maxInterMessageSpace {
			return nil, fmt.Errorf("read message over %d bytes: %w", r.max, ErrMessageTooBig)
		}
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func (r *Reader) readChunked() ([]byte, error) {
	// Between messages: whitespace is tolerated (some clients send a newline
	// after the hello's "]]>]]>"), but the byte before '#' must be LF.
	sawLF := false
	for skipped := 0; ; skipped++ {
		c, err := r.br.ReadByte()
		if err != nil {
			if err == io.EOF {
				return nil, io.EOF
			}
			return nil, fmt.Errorf("read chunk header: %w", err)
		}
		if skipped > maxInterMessageSpace {
			return nil, fmt.Errorf("%w: more than %d bytes of whitespace between messages", ErrBadChunk, maxInterMessageSpace)
		}
		switch {
		case c == '\n':
			sawLF = true
			continue
		case c == ' ' || c == '\t' || c == '\r':
			sawLF = false
			continue
		case c == '#' && sawLF:
		default:
			return nil, fmt.Errorf("%w: expected chunk header LF '#', got %q", ErrBadChunk, c)
		}
		break
	}
	var msg []byte
	for first := true; ; first = false {
		if !first {
			if err := r.expect('\n'); err != nil {
				return nil, err
			}
			if err := r.expect('#'); err != nil {
				return nil, err
			}
		}
		size, end, err := r.chunkSize()
		if err != nil {
			return nil, err
		}
		if end {
			if first {
				return nil, fmt.Errorf("%w: end-of-chunks before any chunk", ErrBadChunk)
			}
			return msg, nil
		}
		if size > uint64(r.max-len(msg)) {
			return nil, fmt.Errorf("read chunk of %d bytes after %d (limit %d): %w", size, len(msg), r.max, ErrMessageTooBig)
		}
		for n := int(size); n > 0; {
			step := min(n, readStep)
			msg = slices.Grow(msg, step)
			if _, err := io.ReadFull(r.br, msg[len(msg):len(msg)+step]); err != nil {
				return nil, fmt.Errorf("%w: chunk data: %w", ErrBadChunk, eofUnexpected(err))
			}
			msg = msg[:len(msg)+step]
			n -= step
		}
	}
}

// chunkSize reads what follows "\n#": either "#\n" (end of chunks) or the
// chunk-size digits and their LF.
func (r *Reader) chunkSize() (size uint64, end bool, err error) {
	c, err := r.br.ReadByte()
	if err != nil {
		return 0, false, fmt.Errorf("%w: chunk header: %w", ErrBadChunk, eofUnexpected(err))
	}
	if c == '#' {
		if err := r.expect('\n'); err != nil {
			return 0, false, err
		}
		return 0, true, nil
	}
	if c < '1' || c > '9' {
		return 0, false, fmt.Errorf("%w: chunk-size starts with %q", ErrBadChunk, c)
	}
	size = uint64(c - '0')
	for digits := 1; ; digits++ {
		c, err := r.br.ReadByte()
		if err != nil {
			return 0, false, fmt.Errorf("%w: chunk header: %w", ErrBadChunk, eofUnexpected(err))
		}
		if c == '\n' {
			return size, false, nil
		}
		if c < '0' || c > '9' {
			return 0, false, fmt.Errorf("%w: %q in chunk-size", ErrBadChunk, c)
		}
		size = size*10 + uint64(c-'0')
		if digits >= 10 || size > MaxChunkSize {
			return 0, false, fmt.Errorf("%w: chunk-size over %d", ErrBadChunk, uint64(MaxChunkSize))
		}
	}
}

func (r *Reader) expect(want byte) error {
	c, err := r.br.ReadByte()
	if err != nil {
		return fmt.Errorf("%w: expected %q: %w", ErrBadChunk, want, eofUnexpected(err))
	}
	if c != want {
		return fmt.Errorf("%w: expected %q, got %q", ErrBadChunk, want, c)
	}
	return nil
}

func eofUnexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Writer writes framed NETCONF messages, each with a single Write call to the
// underlying writer. It is safe for concurrent use.
type Writer struct {
	mu      sync.Mutex
	w       io.Writer
	chunked bool
	buf     []byte
}

// NewWriter returns a Writer in end-of-message mode.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// SetChunked switches the Writer to base:1.1 chunked framing.
func (w *Writer) SetChunked() {
	w.mu.Lock()
	w.chunked = true
	w.mu.Unlock()
}

// WriteMessage frames msg and writes it. In chunked mode the whole message is
// one chunk; an empty message is refused with ErrEmptyMessage. In
// end-of-message mode a message containing the delimiter is refused.
func (w *Writer) WriteMessage(msg []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	buf := w.buf[:0]
	if w.chunked {
		if len(msg) == 0 {
			return ErrEmptyMessage
		}
		if uint64(len(msg)) > MaxChunkSize {
			return fmt.Errorf("write message of %d bytes: %w", len(msg), ErrMessageTooBig)
		}
		buf = append(buf, "\n#"...)
		buf = strconv.AppendInt(buf, int64(len(msg)), 10)
		buf = append(buf, '\n')
		buf = append(buf, msg...)
		buf = append(buf, "\n##\n"...)
	} else {
		// A message ending in "]]>" would also be cut early: "]]>" is both
		// a prefix and a suffix of the delimiter.
		if bytes.Contains(msg, eom) || bytes.HasSuffix(msg, eom[:3]) {
			return ErrDelimiterInMessage
		}
		buf = append(buf, msg...)
		buf = append(buf, eom...)
	}
	_, err := w.w.Write(buf)
	if cap(buf) <= 1<<20 {
		w.buf = buf[:0]
	} else {
		w.buf = nil
	}
	if err != nil {
		return fmt.Errorf("write message: %w", err)
	}
	return nil
}
