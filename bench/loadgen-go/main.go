// Command loadgen-go holds many core (or Centrifugo) sessions for the sessions benchmark with
// little memory per session: the Node load generator (bench/loadgen.ts) keeps about 125 KiB
// per TLS connection once it has received a 270 KiB assignment (Node's TLS input buffers keep
// their largest size), which caps a 24 GB machine near 100,000 sessions next to the server.
//
// It is started by bench/lib/loadgen-pool.ts with an IPC channel (NODE_CHANNEL_FD): the
// parent's messages arrive as JSON lines on that descriptor and replies go back the same way,
// so it answers the same `sessions`, `stats` and `close` commands as bench/loadgen.ts.
package main

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// sessionsCommand mirrors SessionsCommand of bench/loadgen.ts.
type sessionsCommand struct {
	Cmd          string      `json:"cmd"`
	URL          string      `json:"url"`
	Key          string      `json:"key"`
	Protocol     string      `json:"protocol"`
	CA           string      `json:"ca"`
	LocalAddress string      `json:"localAddress"`
	Count        int         `json:"count"`
	Concurrency  int         `json:"concurrency"`
	TimeoutMs    int         `json:"timeoutMs"`
	DeadlineMs   int         `json:"deadlineMs"`
	Retries      int         `json:"retries"`
	RetryDelayMs int         `json:"retryDelayMs"`
	Expect       string      `json:"expect"`
	Centrifugo   *centrifugo `json:"centrifugo"`
}

type centrifugo struct {
	TokenSecret string `json:"tokenSecret"`
	Prefix      string `json:"prefix"`
	// StateChannels > 0: subscribe to state:<n mod StateChannels> with recovery instead, and
	// count the session only when the reply carries the channel's publication.
	StateChannels int `json:"stateChannels"`
}

// sessionsResult mirrors SessionsResult of bench/loadgen.ts.
type sessionsResult struct {
	Type         string         `json:"type"`
	OK           int            `json:"ok"`
	Failed       int            `json:"failed"`
	NotAttempted int            `json:"notAttempted"`
	Reasons      map[string]int `json:"reasons"`
	Retried      int            `json:"retried"`
	RetryReasons map[string]int `json:"retryReasons"`
	LatenciesMs  []float64      `json:"latenciesMs"`
	FirstStart   int64          `json:"firstStart"`
	LastDone     int64          `json:"lastDone"`
	CPUMs        float64        `json:"cpuMs"`
}

var (
	out     *os.File
	outMu   sync.Mutex
	openMu  sync.Mutex
	open    []*websocket.Conn
	dropped atomic.Int64
	closing atomic.Bool
	// Source ports are numbered here, as bench/loadgen.ts does: a bind to port 0 makes Linux
	// search the port range, which with tens of thousands of bound sockets costs most of the CPU.
	nextPort atomic.Int64
	// Centrifugo sessions opened, to number user ids and channels.
	centrifugoSessions atomic.Int64
)

const maxPort = 65000

func send(m any) {
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	outMu.Lock()
	defer outMu.Unlock()
	_, _ = out.Write(append(b, '\n'))
}

func cpuMs() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e6
}

func main() {
	// Set-up reads hundreds of KiB per session that are garbage at once; the live heap is
	// the held sessions. A low GC percentage keeps the heap near that instead of twice it.
	debug.SetGCPercent(20)
	fd, err := strconv.Atoi(os.Getenv("NODE_CHANNEL_FD"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen-go: start me from bench/lib/loadgen-pool.ts (no NODE_CHANNEL_FD)")
		os.Exit(2)
	}
	stopProfile := startProfile(os.Getenv("LG_CPUPROFILE"))
	ch := os.NewFile(uintptr(fd), "ipc")
	out = ch
	nextPort.Store(10000)
	send(map[string]any{"type": "hello", "pid": os.Getpid()})
	in := bufio.NewScanner(ch)
	in.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for in.Scan() {
		var head struct {
			Cmd string `json:"cmd"`
		}
		line := in.Bytes()
		if err := json.Unmarshal(line, &head); err != nil {
			send(map[string]any{"type": "fatal", "message": "bad command: " + err.Error()})
			continue
		}
		switch head.Cmd {
		case "sessions":
			var c sessionsCommand
			if err := json.Unmarshal(line, &c); err != nil {
				send(map[string]any{"type": "fatal", "message": err.Error()})
				continue
			}
			go runSessions(c)
		case "stats":
			openMu.Lock()
			n := len(open)
			openMu.Unlock()
			send(map[string]any{"type": "stats", "open": int64(n) - dropped.Load(), "dropped": dropped.Load()})
		case "close":
			closing.Store(true)
			openMu.Lock()
			for _, c := range open {
				_ = c.NetConn().Close()
			}
			openMu.Unlock()
			send(map[string]any{"type": "closed", "dropped": dropped.Load()})
			stopProfile()
			time.Sleep(200 * time.Millisecond)
			os.Exit(0)
		default:
			send(map[string]any{"type": "fatal", "message": "loadgen-go does not do " + head.Cmd})
		}
	}
	// The parent is gone: its sockets must not stay behind.
	stopProfile()
	os.Exit(0)
}

// startProfile writes a CPU profile of this process into dir (LG_CPUPROFILE), one file per
// load generator, until the returned function is called; nothing when dir is empty.
func startProfile(dir string) func() {
	if dir == "" {
		return func() {}
	}
	f, err := os.Create(fmt.Sprintf("%s/loadgen-go-%d.pprof", dir, os.Getpid()))
	if err != nil || pprof.StartCPUProfile(f) != nil {
		fmt.Fprintln(os.Stderr, "loadgen-go: no CPU profile:", err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}
}

func runSessions(c sessionsCommand) {
	cpu0 := cpuMs()
	deadline := time.Now().Add(time.Duration(c.DeadlineMs) * time.Millisecond)
	dialer, err := newDialer(c)
	if err != nil {
		send(map[string]any{"type": "fatal", "message": err.Error()})
		return
	}
	var mu sync.Mutex
	res := sessionsResult{Type: "sessions", Reasons: map[string]int{}, RetryReasons: map[string]int{}, LatenciesMs: make([]float64, 0, c.Count)}
	started := 0
	stop := make(chan struct{})
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				mu.Lock()
				ok, failed := res.OK, res.Failed
				mu.Unlock()
				send(map[string]any{"type": "progress", "ok": ok, "failed": failed})
			}
		}
	}()
	var wg sync.WaitGroup
	workers := min(c.Concurrency, c.Count)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				if started >= c.Count || !time.Now().Before(deadline) {
					mu.Unlock()
					return
				}
				started++
				if res.FirstStart == 0 {
					res.FirstStart = time.Now().UnixMilli()
				}
				mu.Unlock()
				t0 := time.Now()
				var conn *websocket.Conn
				var reason string
				// A failed set-up is tried again after a pause, as a real core reconnects, up
				// to c.Retries times: the delay the server asked for, else RetryDelayMs. The
				// latency is the core's: from its first attempt.
				for attempt := 0; ; attempt++ {
					timeout := min(time.Duration(c.TimeoutMs)*time.Millisecond, max(time.Second, time.Until(deadline)))
					var retryAfter time.Duration
					conn, reason, retryAfter = openSession(dialer, c, timeout)
					if conn != nil || attempt >= c.Retries {
						break
					}
					if retryAfter == 0 {
						retryAfter = time.Duration(c.RetryDelayMs) * time.Millisecond
					}
					pause := retryPause(retryAfter)
					if !time.Now().Add(pause).Before(deadline) {
						break
					}
					mu.Lock()
					res.Retried++
					res.RetryReasons[reason]++
					mu.Unlock()
					time.Sleep(pause)
				}
				mu.Lock()
				res.LastDone = time.Now().UnixMilli()
				if conn != nil {
					res.OK++
					res.LatenciesMs = append(res.LatenciesMs, float64(time.Since(t0).Microseconds())/1000)
				} else {
					res.Failed++
					res.Reasons[reason]++
				}
				mu.Unlock()
				if conn != nil {
					openMu.Lock()
					open = append(open, conn)
					openMu.Unlock()
					go hold(conn, c.Centrifugo != nil)
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	res.NotAttempted = c.Count - started
	res.CPUMs = cpuMs() - cpu0
	// What set-up read is garbage now; give it back so RSS shows the held sessions.
	runtime.GC()
	debug.FreeOSMemory()
	send(res)
}

// retryPause is the pause before a retry: the delay plus up to as much again, so the cores
// that failed together do not all come back together.
func retryPause(d time.Duration) time.Duration {
	return d + time.Duration(rand.Int63n(int64(d)+1))
}

// newDialer: one TLS configuration for every session (the dev root, verified, SNI localhost).
func newDialer(c sessionsCommand) (*websocket.Dialer, error) {
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(c.CA)) {
		return nil, errors.New("no certificate in ca")
	}
	local := net.ParseIP(c.LocalAddress)
	if local == nil {
		return nil, fmt.Errorf("bad localAddress %q", c.LocalAddress)
	}
	tlsConf := &tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS12}
	if os.Getenv("LG_VERIFY") != "1" {
		// As bench/loadgen.ts: the chain is checked, but a failure is not fatal; Go has no
		// "verify but do not reject", so the check runs here and its result is ignored.
		tlsConf.InsecureSkipVerify = true
		tlsConf.VerifyConnection = func(cs tls.ConnectionState) error {
			opts := x509.VerifyOptions{Roots: roots, DNSName: "localhost", Intermediates: x509.NewCertPool()}
			for _, ic := range cs.PeerCertificates[1:] {
				opts.Intermediates.AddCert(ic)
			}
			_, _ = cs.PeerCertificates[0].Verify(opts)
			return nil
		}
	}
	return &websocket.Dialer{
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			port := nextPort.Add(1) - 1
			if port > maxPort {
				return nil, errors.New("out of source ports")
			}
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: local, Port: int(port)}, Control: reuseAddr}
			return d.DialContext(ctx, network, addr)
		},
		TLSClientConfig: tlsConf,
		ReadBufferSize:  1024,
		// Written buffers go back to a pool: a held session writes only pongs.
		WriteBufferPool: &sync.Pool{},
		WriteBufferSize: 1024,
	}, nil
}

// reuseAddr sets SO_REUSEADDR before the bind, as libuv does for Node's sockets, so a port
// whose earlier connection is in TIME_WAIT can be bound again.
func reuseAddr(_, _ string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
	}); err != nil {
		return err
	}
	return serr
}

func classify(err error) string {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return "timeout"
	}
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return fmt.Sprintf("closed %d", ce.Code)
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	s := err.Error()
	if len(s) > 60 {
		s = s[:60]
	}
	return s
}

// openSession: TLS + upgrade, then the protocol's first exchange. On failure: nil, a reason,
// and the delay the server asked for (Retry-After, retry_after_s), 0 when it named none.
func openSession(d *websocket.Dialer, c sessionsCommand, timeout time.Duration) (*websocket.Conn, string, time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	header := http.Header{}
	var subprotocols []string
	if c.Centrifugo == nil {
		if c.Key != "" {
			header.Set("Authorization", "Bearer "+c.Key)
		}
		if c.Protocol != "" {
			subprotocols = []string{c.Protocol}
		}
	}
	dd := *d
	dd.Subprotocols = subprotocols
	conn, resp, err := dd.DialContext(ctx, c.URL, header)
	if err != nil {
		if resp != nil {
			s, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
			return nil, fmt.Sprintf("http %d", resp.StatusCode), time.Duration(max(s, 0)) * time.Second
		}
		return nil, classify(err), 0
	}
	_ = conn.SetReadDeadline(time.Now().Add(time.Until(deadlineOf(ctx))))
	var reason string
	var retryAfter time.Duration
	if c.Centrifugo != nil {
		reason = centrifugoExchange(conn, c.Centrifugo)
	} else {
		reason, retryAfter = coreExchange(conn, c.Expect)
	}
	if reason != "" {
		_ = conn.NetConn().Close()
		return nil, reason, retryAfter
	}
	_ = conn.SetReadDeadline(time.Time{})
	return conn, "", 0
}

func deadlineOf(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}

// coreExchange: welcome → assign → assignment (the protocol's set-up); a refusal's reason and
// the retry_after_s it carries.
func coreExchange(conn *websocket.Conn, expect string) (string, time.Duration) {
	if _, _, err := conn.ReadMessage(); err != nil {
		return classify(err), 0
	}
	if err := conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"assign","id":1}`)); err != nil {
		return classify(err), 0
	}
	kind, r, err := conn.NextReader()
	if err != nil {
		return classify(err), 0
	}
	if expect == "any" {
		if _, err := io.Copy(io.Discard, r); err != nil {
			return classify(err), 0
		}
		return "", 0
	}
	if kind != websocket.TextMessage {
		return "bad reply", 0
	}
	return readReply(r)
}

// readReply reads the reply to assign up to its type. An assignment's remaining 270 KiB
// (seed files in base64) are read and dropped unparsed: parsing them took half the load
// generator's CPU, on the CPUs the server shares, and the tests check their content.
func readReply(r io.Reader) (string, time.Duration) {
	dec := json.NewDecoder(r)
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return "bad reply", 0
	}
	var kind, code string
	var retryAfter float64
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return "bad reply", 0
		}
		switch key {
		case "type":
			err = dec.Decode(&kind)
		case "code":
			err = dec.Decode(&code)
		case "retry_after_s":
			err = dec.Decode(&retryAfter)
		default:
			err = dec.Decode(&json.RawMessage{})
		}
		if err != nil {
			return "bad reply", 0
		}
		if kind == "assignment" {
			if _, err := io.Copy(io.Discard, io.MultiReader(dec.Buffered(), r)); err != nil {
				return classify(err), 0
			}
			return "", 0
		}
	}
	switch kind {
	case "error":
		return "error " + code, time.Duration(max(retryAfter, 0) * float64(time.Second))
	default:
		return "unexpected " + kind, 0
	}
}

// connectionToken: an HS256 JWT for user sub, valid an hour (src/provision/centrifugo.ts).
func connectionToken(secret, sub string) string {
	b64 := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	body := b64(map[string]string{"alg": "HS256", "typ": "JWT"}) + "." + b64(map[string]any{"sub": sub, "exp": time.Now().Unix() + 3600})
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(body))
	return body + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// centrifugoExchange: connect with a token, then subscribe to a channel of its own, as a
// client SDK does (or to a state channel whose publication must come with the reply);
// replies may share a frame, one JSON object per line; `{}` is a ping.
func centrifugoExchange(conn *websocket.Conn, c *centrifugo) string {
	n := centrifugoSessions.Add(1)
	user := fmt.Sprintf("%s-%d", c.Prefix, n)
	subscribe := map[string]any{"channel": "stream-" + user}
	if c.StateChannels > 0 {
		subscribe = map[string]any{"channel": fmt.Sprintf("state:%d", n%int64(c.StateChannels)), "recover": true}
	}
	connect, _ := json.Marshal(map[string]any{"id": 1, "connect": map[string]string{"token": connectionToken(c.TokenSecret, user)}})
	if err := conn.WriteMessage(websocket.TextMessage, connect); err != nil {
		return classify(err)
	}
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			return classify(err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			if line == "" {
				continue
			}
			if line == "{}" {
				if err := conn.WriteMessage(websocket.TextMessage, []byte("{}")); err != nil {
					return classify(err)
				}
				continue
			}
			var m struct {
				ID        int              `json:"id"`
				Connect   *json.RawMessage `json:"connect"`
				Subscribe *struct {
					Recovered    bool              `json:"recovered"`
					Publications []json.RawMessage `json:"publications"`
				} `json:"subscribe"`
				Error *struct {
					Code int `json:"code"`
				} `json:"error"`
			}
			if json.Unmarshal([]byte(line), &m) != nil {
				return "bad reply"
			}
			switch {
			case m.Error != nil:
				return fmt.Sprintf("error %d", m.Error.Code)
			case m.ID == 1 && m.Connect != nil:
				sub, _ := json.Marshal(map[string]any{"id": 2, "subscribe": subscribe})
				if err := conn.WriteMessage(websocket.TextMessage, sub); err != nil {
					return classify(err)
				}
			case m.ID == 2 && m.Subscribe != nil:
				if c.StateChannels > 0 && !(m.Subscribe.Recovered && len(m.Subscribe.Publications) == 1) {
					return "no state"
				}
				return ""
			default:
				if len(line) > 40 {
					line = line[:40]
				}
				return "unexpected " + line
			}
		}
	}
}

// hold reads a held session until it ends; WebSocket pings are answered by gorilla's default
// handler, Centrifugo's `{}` pings here. An end before `close` counts as dropped.
func hold(conn *websocket.Conn, centrifugoPings bool) {
	for {
		_, r, err := conn.NextReader()
		if err != nil {
			if !closing.Load() {
				dropped.Add(1)
			}
			return
		}
		if !centrifugoPings {
			_, _ = io.Copy(io.Discard, r)
			continue
		}
		data, _ := io.ReadAll(r)
		for _, line := range strings.Split(string(data), "\n") {
			if line == "{}" {
				_ = conn.WriteMessage(websocket.TextMessage, []byte("{}"))
			}
		}
	}
}
