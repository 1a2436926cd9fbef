package postgres

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	"github.com/jackc/pgx/v5/pgproto3"
	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/corral-dev/corral/intercept"
	"github.com/corral-dev/corral/policy"
	"github.com/corral-dev/corral/recorder"
)

// deniedStatement names the failing Parse corral sends in front of a
// denied Bind (a prepared statement the policy no longer allows).
const deniedStatement = "corral_denied"

// expectation is a response the server owes for something the proxy sent
// it. The server answers strictly in order, so the head of the queue says
// what each message from it belongs to.
type expectation struct {
	kind    expKind
	swallow bool // sent by corral, not the client: keep the answer from it
	// withhold: the statement may return masked data in columns no table
	// vouches for (expressions over masked tables, views, functions):
	// such columns are withheld.
	withhold bool
	// closesStmt: a Close of the statement name, which corral forgets
	// when the server confirms it.
	closesStmt bool
	name       string // statement or portal
	deny       string // a denial in disguise: the error it causes says this
	// masks are those of the decision that let this statement run: results
	// are masked by the decision they belong to, however many statements
	// the client has pipelined after it.
	masks *masks
	// batch numbers the extended-protocol batches (a batch ends at Sync):
	// after an error the server skips the rest of the batch, including
	// what the proxy has not even read from the client yet.
	batch uint64
	// seqs are the recording's numbers of the statements whose results
	// this is (several for a multi-statement query); sent is when it went
	// to the server. Both only when the session is recorded.
	seqs []uint64
	sent time.Duration // sinceStart
	// answered, when set, is closed once the server has answered this
	// (ReadyForQuery): the client side waits on it behind a barrier.
	answered chan struct{}
	// rec: the record a Parse made, to be confirmed or dropped by the
	// server's answer, and only if no later Parse of the name replaced it.
	rec *prepared
	// catalogSeq and codeSeq: session.catalogSent and codeSent when this
	// was sent, this request's own statements included.
	catalogSeq, codeSeq uint64
	// closeAt (a Close of a statement): session.parses when it was sent.
	closeAt uint64
	// renew (a named Bind) and declares (a query's DECLAREs, in order;
	// nil for a name not marked unfiltered) are set when the server
	// confirms that a name marked unfiltered was made anew (see
	// session.renewed).
	renew    *atomic.Bool
	declares []*atomic.Bool
	// confirms (a Bind) is set when the server confirms it (see
	// portalRec).
	confirms *atomic.Bool
	// ready numbers the requests answered by ReadyForQuery (Sync, Query,
	// FunctionCall), in the order sent (session.readies).
	ready uint64
}

// processStart is when the process started: sinceStart keeps a request's
// time in a third of a time.Time, and a session may have many requests
// queued.
var processStart = time.Now()

func sinceStart() time.Duration { return time.Since(processStart) }

type expKind uint8

const (
	expParse          expKind = iota // ParseComplete
	expBind                          // BindComplete
	expDescribeStmt                  // ParameterDescription, RowDescription | NoData
	expDescribePortal                // RowDescription | NoData
	expExecute                       // DataRow*, CommandComplete | EmptyQueryResponse | PortalSuspended
	expClose                         // CloseComplete
	expSync                          // ReadyForQuery
	expQuery                         // everything up to ReadyForQuery (simple query, function call)
)

// prepared is what corral knows of a statement the client prepared.
type prepared struct {
	stmt   []Statement // one statement; none for an empty query or when denied at Parse
	denied string      // reason, when denied at Parse
	// prev: what the server may hold under the name instead, until it
	// confirms this Parse. A Parse of the unnamed statement after other
	// messages of its batch is skipped if one of them fails, and the
	// server keeps the unnamed statement it had; a Bind pipelined behind
	// it must be fit to run any of them. So does a Parse of a named
	// statement Closed before it in the batch, with the Close. Set by the
	// client side, cut by the server side when the Parse (or that Close)
	// is confirmed.
	prev atomic.Pointer[prepared]
	// madeAt numbers the records in the order their Parses were sent
	// (session.newRecord); lost: it stands for records cut from a chain.
	madeAt uint64
	lost   bool
}

// maxPending bounds the unnamed statements a Bind may have to be fit to
// run, one per Parse of it the server has not confirmed.
const maxPending = 16

// candidates are the statements the server may run for a Bind of p: its
// own, and those of the unnamed statements before it that the server has
// not yet replaced for sure. denied: one of them was refused. ok is false
// when there are more than maxPending.
func (p *prepared) candidates() (stmts []Statement, denied string, ok bool) {
	stmts = p.stmt
	if p.prev.Load() == nil {
		return stmts, "", true // the usual case, on every Bind: nothing pending
	}
	seen := map[string]bool{}
	for _, st := range p.stmt {
		seen[st.Text] = true
	}
	q := p.prev.Load()
	for n := 0; q != nil; n++ {
		if n >= maxPending {
			return nil, "", false
		}
		if q.denied != "" && denied == "" {
			denied = q.denied
		}
		for _, st := range q.stmt {
			if !seen[st.Text] {
				seen[st.Text] = true
				stmts = append(slices.Clip(stmts), st)
			}
		}
		q = q.prev.Load()
	}
	return stmts, denied, true
}

// size is roughly what the record holds: the statement's text, its
// normalized form, and what classification found.
func (p *prepared) size() int {
	n := 64 + len(p.denied)
	for _, st := range p.stmt {
		n += 256 + 2*len(st.Text)
	}
	return n
}

// plan says how to mask each column of a result; nil: nothing to do.
type plan struct {
	masks   *masks
	methods []string // per column: mask method, "" none
	text    []bool   // per column: a text type
	scan    []bool   // per column: a type whose values may hold text (detectors apply)
	inPlace []bool   // per column: what detectors find can be masked inside the value
	types   []uint32 // per column: the type
	binary  []bool
	detect  bool
}

type session struct {
	h *Handler
	c *intercept.Conn // who and where: identity, target, audit
	// cli is the workload's end as the session reads and writes it: c, or
	// TLS over c.
	cli  net.Conn
	ctx  context.Context
	up   net.Conn
	cat  *catalog
	key  []byte
	stop sync.Once

	// reviewed: the statement decide just refused was held for review;
	// spent: corral's time on the request being read, which carries an
	// operation if spentOps (see metrics.go).
	reviewed bool
	spent    time.Duration
	spentOps bool

	// client -> server
	upMu    sync.Mutex
	upW     *outbuf
	be      *pgproto3.Backend
	stmtsMu sync.Mutex // the server side forgets statements whose Parse failed
	stmts   map[string]*prepared
	held    int                    // the size of stmts' records
	sqlPS   map[string]sqlPrepared // SQL-level PREPAREd names
	// cursors are the SQL cursors DECLAREd, and whether their rows may
	// carry masked data in columns no table vouches for (see risky).
	cursors map[string]bool
	// riskyClosed: risky cursors since CLOSEd (see forgetCursor); allRisky:
	// there were too many to keep apart.
	riskyClosed map[string]bool
	allRisky    bool
	// maskedNow is the masks of the latest decision, for messages the
	// server sends that answer no request with masks of its own (a
	// deferred trigger's notice at Sync).
	maskedNow atomic.Pointer[masks]

	// server -> client
	cliMu sync.Mutex
	cliW  *outbuf
	fe    *pgproto3.Frontend
	query *plan

	qMu sync.Mutex
	q   []expectation
	// qAll is q's array from its start: an emptied queue starts there
	// again instead of growing a new array.
	qAll     []expectation
	batch    uint64 // client side: the batch being sent
	failed   uint64 // the batch the server is skipping, when skipping
	skipping bool
	copyIn   atomic.Bool // the server waits for COPY data: Sync means nothing
	// clientCopy (client side): the server took the client into COPY
	// FROM STDIN, and the client has not yet sent CopyDone or CopyFail.
	// A Sync sent then is dropped: the server ignores it while copying,
	// but answers it once an error has ended the copy, and corral could
	// not tell which.
	clientCopy bool
	// inBatch (client side) counts the extended-protocol messages read
	// since the last Sync. overflow: the queue of expectations grew past
	// maxInFlight (set by expect, on the client side, as is the check).
	inBatch  int
	overflow bool
	// closing (client side): the statements Closed by name since the last
	// Sync, as their records were then. A Parse of such a name in the
	// same batch is carried out after the Close or skipped with it.
	closing    map[string]*prepared
	parses     uint64          // records made (see newRecord)
	portalCopy map[string]bool // bound portals that run COPY FROM STDIN
	// rollbackPortals: names ever bound to ROLLBACK TO SAVEPOINT (see
	// noteRollbackPortal); anyRollsBack: more of them than kept.
	rollbackPortals map[string]bool
	anyRollsBack    bool
	bound           *pgproto3.Bind // the Bind being decided, whose values reviewers see

	// server side: the plan of the result being streamed, and whether it
	// was described for the statement now answering.
	execPlan   *plan
	execPlanOK bool
	// described (client side): the message just read was a Describe of a
	// portal, whose answer the server side takes as the plan of the
	// portal's next Execute (see onExecute).
	described describedPortal
	queryDesc bool

	// masks of the latest decision, and of the decision behind each bound
	// portal (client side only).
	masks          *masks
	maskSrc        []policy.Mask // what masks was compiled from
	portalMasks    map[string]*masks
	portalWithhold map[string]bool
	withholdNext   bool     // of the statements just decided
	audited        bool     // decide recorded the refusal it returned
	seqs           []uint64 // recording numbers of the statements just decided
	// barrier: a statement just decided may change settings where corral
	// cannot see it (a DO block, CALL, a function of the database's own:
	// any of them can run set_config). Nothing the client pipelined after
	// it is forwarded before the server has answered it, so that a
	// ParameterStatus saying the server now reads statements differently
	// ends the session before another statement reaches the server.
	barrier      bool
	batchBarrier bool // a barrier statement is in the extended batch being sent
	// unsettled: a barrier statement ran in the extended batch being
	// sent. The server reports changed settings only with ReadyForQuery,
	// at the batch's Sync: until then no new SQL text is passed on, or
	// the server might read it otherwise than corral did.
	unsettled bool
	// portalBarrier: the portal names whose statements are barriers,
	// which run when executed, maybe batches later; kept past a Close,
	// which the server may skip. (A cursor's are its cursorOps.)
	portalBarrier map[string]bool

	dead      chan struct{}
	portalSeq map[string]uint64 // the recorded decision behind each bound portal
	// portals are what each portal name may run (see portalRec): an
	// Execute after a reload decides them again. portalLost: records of
	// the name were dropped (too many awaiting the server, a ROLLBACK TO
	// that may bring older portals back); after a reload it is refused.
	portals    map[string][]portalRec
	portalLost map[string]portalLoss
	// readies counts the requests sent that ReadyForQuery answers (client
	// side, under qMu); idleThrough (server side) is one past the last of
	// them after which the server was outside any transaction: portals
	// bound before it are gone.
	readies     uint64
	idleThrough atomic.Uint64
	// cursorOps are the operations, tables and functions of what each
	// cursor or portal name was ever declared or bound to run, which FETCH
	// needs as EXECUTE needs its PREPARE's; kept past CLOSE (the server
	// may skip one), up to maxNames names. cursorOpsLost: some were
	// dropped at the bound.
	cursorOps     map[string]behind
	cursorOpsLost bool

	// server side: the result being streamed, for the recording.
	res result

	// plannerSet: a statement allowed in this session changed a planner
	// setting (see masks.plannerChange).
	plannerSet bool
	// unfiltered: cursors and portals that existed when masks came to
	// restrict filters more (a reload): they may return rows filtered or
	// ordered as the masks now refuse, and are not read. Names stay in
	// it, as the server may have skipped a CLOSE; only a Bind of the
	// unnamed portal replaces what the name holds.
	unfiltered map[string]bool
	// unnamedUnfiltered: the unnamed portal was among them. A Bind
	// clears its mark, but ROLLBACK TO SAVEPOINT brings back a portal
	// bound before the savepoint.
	unnamedUnfiltered bool
	// renewed: for names in unfiltered, set once the server confirmed
	// that the name was made anew, by a statement decided under the
	// masks that marked it (a named BindComplete, a DECLARE's
	// CommandComplete): the server refuses either while the old cursor or
	// portal exists, so the name no longer holds it. A new marking
	// forgets them. freshIn: names bound or declared in the current
	// extended batch or query, which an error would have ended before
	// anything read them.
	renewed  map[string]*atomic.Bool
	freshIn  map[string]uint64
	unit     uint64 // numbers the batches and queries, for freshIn
	querying bool   // the statements being decided are a simple query's

	// server side: how many DECLAREs of the query being answered the
	// server has confirmed.
	declared int
	// maskVersion: the policy version of the decision that gave the
	// current masks (see refreshMasks).
	maskVersion uint64

	// preparing: the statements being decided are only prepared (Parse);
	// a review holds their executions, not this.
	preparing bool

	// server side: plans by result shape (see plan).
	plans   map[string]cachedPlan
	planKey []byte

	// catalogSent (client side) counts the statements allowed that may
	// change the catalog; catalogSeen (server side) is the count the
	// server had answered when it was last ready outside a transaction.
	// The catalog cache is checked again in between, so what runs next is
	// judged by the catalog after them. While they differ the catalog's
	// connection cannot see what the session did (see uncertain).
	catalogSent, catalogSeen atomic.Uint64
	// codeSent and codeSeen count likewise the statements that run code
	// of the database's own (runsCode): they may change the catalog too,
	// but are too common to have it checked for (see uncertain).
	codeSent, codeSeen atomic.Uint64
	// pathSet: the session set its search_path (see functionFacts).
	pathSet bool
	// catalogDoubt: the catalog could not answer for the statement being
	// decided, which was taken at its worst.
	catalogDoubt bool
	// window: what the session's catalog changes out of the catalog's
	// sight named (see uncertain).
	window changeWindow
}

// changeWindow holds the names a session's catalog changes named while
// the catalog cannot see them: functions, operators and types made,
// changed or renamed to (a pg_temp.lower shadows nothing the catalog
// knows of, yet is not PostgreSQL's), and relations DDL named (a table
// made a view by a rule keeps its OID, and the catalog's kind). The
// client goroutine adds to it; plans, on the server's, read it.
type changeWindow struct {
	mu        sync.Mutex
	functions map[string]bool
	relations map[string]bool
	// typeCode: a statement bound the database's functions to a type
	// (see Statement.bindsTypeCode); typed: relations a statement gave
	// columns of a type the database binds code to, or of one made out
	// of the catalog's sight (see session.runsTypeCode).
	typeCode bool
	typed    map[string]bool
	// typedTypes: types made out of the catalog's sight on one of those.
	typedTypes map[string]bool
}

// note adds a statement's names, starting anew when the window before
// was over; bindsCode and typed are what session.decide found of it.
func (w *changeWindow) note(st *Statement, fresh, bindsCode, typed bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if fresh || w.functions == nil {
		w.functions, w.relations, w.typed, w.typedTypes = map[string]bool{}, map[string]bool{}, map[string]bool{}, map[string]bool{}
		w.typeCode = false
	}
	for _, n := range st.defines {
		w.functions[n] = true
	}
	w.typeCode = w.typeCode || bindsCode
	for _, t := range st.Tables {
		w.relations[strings.ToLower(lastName(t))] = true
		if typed {
			w.typed[strings.ToLower(lastName(t))] = true
		}
	}
	if typed {
		for _, n := range st.defines {
			w.typedTypes[n] = true // a domain over json
		}
		for _, t := range st.Tables {
			w.typedTypes[strings.ToLower(lastName(t))] = true // ALTER TYPE c ADD ATTRIBUTE; a table's row type
		}
	}
}

func (w *changeWindow) typedType(name string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.typedTypes[name]
}

func (w *changeWindow) typedRelation(name string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.typed[strings.ToLower(name)]
}

func (w *changeWindow) function(name string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.functions[name]
}

func (w *changeWindow) bindsTypeCode() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.typeCode
}

func (w *changeWindow) relation(name string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.relations[strings.ToLower(name)]
}

// uncertain reports whether the session has changed the catalog in a
// transaction that has not ended (or in statements not yet answered): the
// catalog's own connection sees none of it, so a function, a view or a
// redefinition made there is unknown to it, or known as it was before.
// While masks apply, what the catalog cannot vouch for is then taken at
// its worst: a function it cannot find is the database's own, a relation
// it does not know or a view may read masked columns, and a view's
// columns are withheld.
func (s *session) uncertain() bool {
	return s.catalogSent.Load() > s.catalogSeen.Load() || s.codeSent.Load() > s.codeSeen.Load()
}

// result accumulates what the recording says of one statement's response.
type result struct {
	rows, bytes, masked uint64
	cols                []string
	idx                 int // which statement of a multi-statement query answers
}

type flushReader struct {
	r  io.Reader
	mu *sync.Mutex
	w  *outbuf
}

// Read flushes what is waiting to go the other way before it blocks: a
// message is held back only while more input is already at hand, so
// responses batch under load and never wait on an idle peer.
func (f *flushReader) Read(p []byte) (int, error) {
	f.mu.Lock()
	err := f.w.Flush()
	f.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return f.r.Read(p)
}

func newSession(ctx context.Context, h *Handler, c *intercept.Conn, cli net.Conn, up net.Conn, cat *catalog) *session {
	s := &session{
		h: h, c: c, cli: cli, ctx: ctx, up: up, cat: cat, key: h.MaskKey,
		upW:   &outbuf{w: up},
		cliW:  &outbuf{w: cli},
		stmts: map[string]*prepared{},
		sqlPS: map[string]sqlPrepared{}, cursors: map[string]bool{}, riskyClosed: map[string]bool{},
	}
	s.be = pgproto3.NewBackend(&flushReader{r: cli, mu: &s.upMu, w: s.upW}, io.Discard)
	s.be.SetMaxBodyLen(maxMessage)
	s.fe = pgproto3.NewFrontend(&flushReader{r: up, mu: &s.cliMu, w: s.cliW}, io.Discard)
	// pgproto3 would read a server's message up to a gigabyte into
	// memory, and detectors read its values.
	s.fe.SetMaxBodyLen(maxMessage)
	s.masks = compileMasks(c.Admission.Mask)
	s.maskVersion = c.Admission.PolicyVersion
	s.portalMasks = map[string]*masks{}
	s.portalWithhold = map[string]bool{}
	s.portalSeq = map[string]uint64{}
	s.portals, s.portalLost, s.cursorOps = map[string][]portalRec{}, map[string]portalLoss{}, map[string]behind{}
	s.portalBarrier = map[string]bool{}
	s.portalCopy = map[string]bool{}
	s.rollbackPortals = map[string]bool{}
	s.dead = make(chan struct{})
	return s
}

func (s *session) close() {
	s.stop.Do(func() {
		close(s.dead)
		s.up.Close()
		s.cli.Close()
	})
}

// awaitAnswer forwards what is buffered and waits until the server has
// answered e (or the session ends).
func (s *session) awaitAnswer(answered chan struct{}) error {
	if err := s.flushUp(); err != nil {
		return err
	}
	select {
	case <-answered:
		return nil
	case <-s.dead:
		return net.ErrClosed
	case <-s.ctx.Done():
		return s.ctx.Err()
	}
}

func (s *session) run() error {
	done := make(chan error, 1)
	go func() {
		err := s.fromServer()
		s.close()
		done <- err
	}()
	err := s.fromClient()
	s.close()
	serverErr := <-done
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || err == nil {
		err = nil
	}
	if serverErr != nil && !errors.Is(serverErr, io.EOF) && !errors.Is(serverErr, net.ErrClosed) && s.ctx.Err() == nil {
		return errors.Join(err, serverErr)
	}
	return err
}

// --- client to server ---

func (s *session) send(msgs ...pgproto3.FrontendMessage) error {
	s.upMu.Lock()
	defer s.upMu.Unlock()
	for _, m := range msgs {
		// Encoded in place, in the writer's free space.
		b, err := m.Encode(s.upW.AvailableBuffer())
		if err != nil {
			return err
		}
		if _, err := s.upW.Write(b); err != nil {
			return err
		}
	}
	return nil
}

func (s *session) expect(es ...expectation) {
	s.qMu.Lock()
	for _, e := range es {
		e.batch, e.catalogSeq, e.codeSeq = s.batch, s.catalogSent.Load(), s.codeSent.Load()
		if e.kind == expSync || e.kind == expQuery {
			e.ready, s.readies = s.readies, s.readies+1 // answered by ReadyForQuery
		}
		if s.skipping && s.failed == s.batch && e.kind != expSync {
			// The server already skips the rest of this batch: nothing
			// will answer this, and a client that goes on sending must
			// not grow the queue.
			if e.answered != nil {
				close(e.answered)
			}
			if e.kind == expParse && e.name != "" && e.rec != nil && !e.swallow {
				s.unmade(e.name, e.rec)
			}
			continue
		}
		moves := len(s.q) == cap(s.q)
		s.q = append(s.q, e)
		if moves {
			s.qAll = s.q[:0]
		}
		s.overflow = s.overflow || len(s.q) > maxInFlight
		if e.kind == expSync {
			s.batch++
			s.unit++
		}
	}
	s.qMu.Unlock()
}

func (s *session) fromClient() error {
	for {
		msg, err := s.be.Receive()
		if err != nil {
			s.tooLong(err, "the client sent a message of %d bytes; corral reads at most %d: the session is ended")
			return err
		}
		start := s.clock(msg)
		serverNames(msg)
		droppedSync := false
		described := s.described
		s.described = describedPortal{}
		if s.clientCopy && !s.copyIn.Load() {
			// The server ended the copy (an error in the data): what the
			// client sends now, it reads as usual.
			s.clientCopy = false
		}
		if s.clientCopy {
			switch msg.(type) {
			case *pgproto3.CopyData, *pgproto3.CopyDone, *pgproto3.CopyFail, *pgproto3.Sync, *pgproto3.Flush, *pgproto3.Terminate:
			default:
				// The server would fail the copy on it; corral would have
				// recorded it as a request to answer, and fallen out of
				// step with the server.
				return fmt.Errorf("the client sent %T during COPY FROM STDIN", msg)
			}
		}
		switch m := msg.(type) {
		case *pgproto3.Query:
			err = s.onQuery(m)
		case *pgproto3.Parse:
			err = s.onParse(m)
		case *pgproto3.Bind:
			err = s.onBind(m)
		case *pgproto3.Describe:
			e := expectation{kind: expDescribeStmt, name: m.Name}
			if m.ObjectType == 'P' {
				e.kind = expDescribePortal
				e.masks, e.withhold = s.portalMasking(m.Name)
				s.described = describedPortal{name: m.Name, masks: e.masks, withhold: e.withhold, ok: true}
			}
			s.expect(e)
			err = s.send(m)
		case *pgproto3.Execute:
			err = s.onExecute(m, described)
		case *pgproto3.Close:
			e := expectation{kind: expClose}
			if m.ObjectType == 'S' {
				// Forgotten when the server confirms: after an error it
				// skips the Close, and still holds the statement a later
				// Bind of the name would run.
				e.name, e.closesStmt, e.closeAt = m.Name, true, s.parses
				if rec, ok := s.stmt(m.Name); ok && m.Name != "" {
					if s.closing == nil {
						s.closing = map[string]*prepared{}
					}
					s.closing[m.Name] = rec
				}
				s.sqlGone(m.Name) // one name space on the server
			} else {
				// An unknown portal is taken as risky: forgetting one
				// early only withholds more.
				delete(s.portalMasks, m.Name)
				delete(s.portalWithhold, m.Name)
				delete(s.portalSeq, m.Name)
				delete(s.portals, m.Name)
				delete(s.portalLost, m.Name)
				s.forgetCursor(m.Name)
			}
			s.expect(e)
			err = s.send(m)
		case *pgproto3.Sync:
			if s.clientCopy {
				droppedSync = true
				break
			}
			var answered chan struct{}
			{
				e := expectation{kind: expSync}
				if s.batchBarrier {
					answered = make(chan struct{})
					e.answered = answered
					s.batchBarrier = false
				}
				s.unsettled = false
				s.expect(e)
			}
			err = s.send(m)
			if err == nil && answered != nil {
				err = s.awaitAnswer(answered)
			}
		case *pgproto3.Flush:
			err = s.send(m)
			if err == nil {
				err = s.flushUp()
			}
		case *pgproto3.FunctionCall:
			err = s.onFunctionCall(m)
		case *pgproto3.CopyDone, *pgproto3.CopyFail:
			// The server leaves the copy on reading this: what the client
			// sends next, it reads as usual.
			s.clientCopy = false
			err = s.send(m.(pgproto3.FrontendMessage))
		case *pgproto3.CopyData:
			err = s.send(m)
		case *pgproto3.Terminate:
			s.send(m)
			s.flushUp()
			return nil
		default:
			return fmt.Errorf("unexpected %T from the client", msg)
		}
		if err != nil {
			return err
		}
		s.added(msg, start)
		if s.overflow {
			return fmt.Errorf("the client has more than %d requests awaiting the server's answer", maxInFlight)
		}
		switch msg.(type) {
		case *pgproto3.Parse, *pgproto3.Bind, *pgproto3.Describe, *pgproto3.Execute, *pgproto3.Close:
			s.inBatch++
		case *pgproto3.Sync:
			if !droppedSync {
				s.inBatch = 0
				clear(s.closing)
			}
		}
	}
}

// nameLen is how much of a statement or portal name the server reads: it
// keys both by their first NAMEDATALEN-1 bytes, so names that differ only
// after them are one name.
const nameLen = 63

// serverNames cuts the statement and portal names of a client message to
// what the server keys them by. corral tracks names as the server does, or
// a Close or Parse of one name would change what a Bind of another runs.
func serverNames(msg pgproto3.FrontendMessage) {
	cut := func(n *string) {
		if len(*n) > nameLen {
			*n = (*n)[:nameLen]
		}
	}
	switch m := msg.(type) {
	case *pgproto3.Parse:
		cut(&m.Name)
	case *pgproto3.Bind:
		cut(&m.PreparedStatement)
		cut(&m.DestinationPortal)
	case *pgproto3.Describe:
		cut(&m.Name)
	case *pgproto3.Execute:
		cut(&m.Portal)
	case *pgproto3.Close:
		cut(&m.Name)
	}
}

func (s *session) flushUp() error {
	s.upMu.Lock()
	defer s.upMu.Unlock()
	return s.upW.Flush()
}

// decide puts statements to the policy; it returns "" when all may run, or
// the reason the first that may not.
func (s *session) decide(stmts []Statement) string {
	s.withholdNext = false
	s.barrier = false
	s.seqs = s.seqs[:0]
	s.audited = false
	for i := range stmts {
		st := &stmts[i]
		// A prepared statement is decided again at every Bind, with the
		// catalog of that moment.
		st.facts = facts{}
		s.catalogDoubt = false
		if r := syntaxChange(st); r != "" {
			return s.refuse(st.auditText(), st.Ops, r)
		}
		ops := st.Ops
		tables, functions := st.Tables, st.Functions
		if st.Command == "DO" || st.Command == "CALL" {
			s.barrier = true
		}
		if s.callsVolatile(st) || s.runsTypeCode(st) {
			s.barrier = true
			ops = union(ops, []string{"function"})
		}
		if st.replacesFunction && len(st.defines) > 0 {
			// A guard (a trigger, a row security policy, a check) that
			// calls the function is switched off as surely as dropped.
			// One renamed in the open transaction is unknown to the
			// catalog's connection, or known by its old name.
			name := st.defines[0]
			fs, err := s.cat.userFunctions(s.ctx, st.defines[:1])
			if err != nil || fs[name].guards || s.uncertain() && (fs[name].unknown || s.window.function(name)) {
				ops = union(ops, []string{"drop"})
			}
		}
		if vops := s.viewOps(st); len(vops) > 0 {
			s.barrier = s.barrier || barrierOps(vops)
			ops = union(ops, vops)
		}
		if st.Prepares != "" {
			// The server holds SQL and protocol prepared statements under
			// one name space: its answer for the name would not be the
			// statement decided here.
			if _, ok := s.stmt(st.Prepares); ok {
				return s.refuse(st.auditText(), st.Ops, fmt.Sprintf("a statement named %q is already prepared", st.Prepares))
			}
		}
		if r := s.overNames(st); r != "" {
			return s.refuse(st.auditText(), st.Ops, r)
		}
		if st.CopyIn && slices.ContainsFunc(stmts[i+1:], func(o Statement) bool { return o.CopyIn }) {
			// After one copy ends the server would start the next, and a
			// Sync in between would mean something or nothing.
			return s.refuse(st.auditText(), st.Ops, "a query may hold one COPY FROM STDIN; send each in its own query")
		}
		if st.Executes != "" {
			prep, ok := s.sqlPS[st.Executes]
			if !ok || prep.gone {
				return s.refuse(st.auditText(), st.Ops, fmt.Sprintf("EXECUTE of %q, which was not prepared in this session", st.Executes))
			}
			ops = append(append([]string(nil), ops...), prep.runs.ops...)
			tables, functions = union(tables, prep.runs.tables), union(functions, prep.runs.functions)
			if barrierOps(prep.runs.ops) {
				s.barrier = true // what was prepared runs now
			}
		}
		if st.Fetches != "" {
			// A cursor runs its query as it is fetched: FETCH needs what
			// the query needs, under the policy of now.
			was, ok := s.cursorOps[st.Fetches]
			if !ok && s.cursorOpsLost {
				return s.refuse(st.auditText(), st.Ops, fmt.Sprintf("corral no longer knows what cursor %q runs (too many cursors this session); declare it again", st.Fetches))
			}
			ops = union(ops, was.ops)
			tables, functions = union(tables, was.tables), union(functions, was.functions)
			if !ok || barrierOps(was.ops) {
				// The cursor's query runs now; one corral did not see
				// declared (a function's) may run anything.
				s.barrier = true
			}
		}
		text := st.normalized
		if text == "" {
			n, err := pg.Normalize(st.Text)
			if err != nil {
				n = st.Command
			}
			text, st.normalized = n, n
		}
		st.decidedOps = ops
		act := policy.Action{
			Kind:       policy.KindSQL,
			Operations: ops,
			SQL: &policy.SQL{
				Command: st.Command, Tables: tables, Functions: functions,
				HasWhere: st.HasWhere, Text: text, Fingerprint: st.Fingerprint,
			},
		}
		d, err := s.h.Policy.Decide(s.ctx, s.c.Input(act))
		if err != nil {
			s.h.Log.Error("policy failed; statement denied", "session_id", s.c.SessionID, "err", err)
		}
		if err != nil && d.Result != policy.Deny {
			d = policy.Decision{Result: policy.Deny, Reason: "the policy could not be evaluated", PolicyVersion: d.PolicyVersion}
		}
		reason := ""
		var rv *intercept.Review
		switch d.Result {
		case policy.Allow, policy.Review:
			s.setMasks(d.Mask)
			s.maskVersion = d.PolicyVersion
			risky := s.risky(st)
			if s.masks != nil && len(s.masks.columns) > 0 {
				// FETCH and EXECUTE name no table: their rows are those of
				// the statement behind the name, decided when it was
				// declared or prepared. A cursor corral did not see
				// declared (a function's) is taken as risky.
				if st.Fetches != "" {
					if r, ok := s.cursors[st.Fetches]; !ok || r {
						risky = true
					}
				}
				if st.Executes != "" && s.sqlPS[st.Executes].risky {
					risky = true
				}
			}
			st.risky = risky
			s.withholdNext = s.withholdNext || risky
			l, err := s.lineage(st)
			// While masks restrict filters, the catalog must say which
			// names are views over masked columns, or their filters
			// would go unseen.
			if err != nil && (st.escapes() || s.masks != nil && s.masks.strictFilters != "") {
				// Results are withheld when the catalog cannot answer
				// (risky); values leaving for elsewhere cannot be.
				s.h.Log.Warn("catalog lookup failed; statement refused", "session_id", s.c.SessionID, "err", err)
				reason = "corral could not read the catalog to check the statement against masked columns"
			} else if leak := s.masks.leak(st, l); leak != "" {
				reason = "the statement would return the masked column " + leak + " without masking; select masked columns directly"
			} else if why := s.masks.filtered(st, l); why != "" {
				reason = why
			} else if why := s.masks.correlated(st, l); why != "" {
				reason = why
			} else if why := s.masks.plannerChange(st); why != "" {
				reason = why
			} else if st.Fetches != "" && s.stillUnfiltered(st.Fetches) {
				reason = fmt.Sprintf("cursor %q was declared before the masks came to restrict filters; declare it under another name, or reconnect", st.Fetches)
			} else if s.plannerSet && s.masks != nil && s.masks.strictFilters != "" && s.masks.maskedTable(st, l) != "" {
				// Settings made before a reload brought the restriction
				// may still hold.
				reason = "this session changed planner settings before its masks restricted filters; reconnect to read masked tables"
			} else if rel := s.masks.renamed(st, l); rel != "" {
				// Masks name schemas, tables and columns: renamed, they
				// would no longer apply.
				reason = "the statement would rename " + rel + ", or a column of it, out of reach of its masks"
				if st.renamesSchema {
					reason = "the statement would rename a schema while masks apply, and masks may name it"
				}
			} else if st.callOID != 0 && s.masks != nil && !largeObjectCalls[st.callOID] {
				// A function called by number may run SQL (query_to_xml),
				// read any table or change the planner's settings:
				// nothing of it can be checked against masks. The
				// large-object interface, which libpq and JDBC drive this
				// way, reads no table.
				reason = "a function called by number (the protocol's function call) is refused while masks apply: call it from a statement"
			} else if risky && (st.CopyOut || st.Into || st.Executes != "") {
				// Rows leaving as COPY data or into a new table cannot be
				// masked column by column.
				reason = "the statement would copy data that may hold masked columns out of reach of masking"
			}
			if d.Result == policy.Review && reason == "" && !s.preparing {
				s.reviewed = true
				rv, reason = s.requestApproval(d, act, text, st)
			}
		default:
			reason = d.Reason
			if s.catalogDoubt && slices.Contains(ops, "function") {
				// "function is denied" of a statement that calls none
				// would puzzle whoever reads it.
				reason += " (corral could not read the database's catalog, so the statement counts as calling the database's functions)"
			}
		}
		seq, err := s.c.Emit(intercept.Event{Event: intercept.EventStatement, Statement: &intercept.StatementInfo{
			Text: text, Operations: ops, Decision: decisionOf(reason, d), Reason: firstNonEmpty(reason, d.Reason), Rule: d.Rule, PolicyVersion: d.PolicyVersion,
			Request: rv.ID(),
		}})
		if rv != nil {
			reason = s.awaitApproval(rv, reason, err)
		}
		if reason != "" {
			s.audited = true
			return reason
		}
		if err != nil {
			// Strict recording: what cannot be recorded does not run.
			return err.Error()
		}
		s.seqs = append(s.seqs, seq)
		s.plannerSet = s.plannerSet || plannerSetting(st.Sets) != ""
		s.pathSet = s.pathSet || slices.Contains(st.Sets, "search_path") || slices.Contains(st.Sets, "*")
		if s.querying && st.Declares != "" {
			s.made(st.Declares) // what the query fetches after this reads it
		}
		if !s.preparing && (changesCatalog(st.Ops) || runsCode(ops)) {
			s.window.note(st, !s.uncertain(), st.bindsTypeCode && slices.Contains(ops, "function"), s.namesTypeWithCode(st))
			if changesCatalog(st.Ops) {
				s.catalogSent.Add(1)
			}
			if runsCode(ops) {
				s.codeSent.Add(1)
			}
		}
	}
	// corral learns of these before the server answers, and the server
	// may refuse them (the name exists, the transaction has failed). So a
	// name keeps what every statement given it could do: EXECUTE and
	// FETCH are decided by the union, never by a statement the server
	// may not hold.
	for _, st := range stmts {
		switch {
		case st.Prepares != "":
			old := s.sqlPS[st.Prepares]
			s.sqlPS[st.Prepares] = sqlPrepared{runs: old.runs.with(&st), risky: old.risky || st.risky}
		case st.DeallocateAll:
			for name := range s.sqlPS {
				s.sqlGone(name)
			}
		case st.Deallocates != "":
			s.sqlGone(st.Deallocates)
		case st.Declares != "":
			s.noteCursorOps(st.Declares, behind{}.with(&st))
			s.cursors[st.Declares] = s.cursors[st.Declares] || st.risky || s.closedRisky(st.Declares)
			if _, bound := s.portalMasks[st.Declares]; bound {
				// One name space with protocol portals: the name's portal
				// record no longer says what an Execute of it returns.
				s.portalWithhold[st.Declares] = true
			}
		case st.rollsBack:
			s.rolledBack()
		case st.ClosesAll:
			for name := range s.cursors {
				s.forgetCursor(name)
			}
		case st.Closes != "":
			s.forgetCursor(st.Closes)
		}
	}
	return ""
}

// forgetCursor drops a cursor's record on its CLOSE. The server may not
// run the CLOSE (a failed batch, a statement only parsed) and keep the
// cursor, and a later DECLARE of the name it refuses must not make the
// name look safe: a risky name stays risky. Those are kept apart, bounded;
// past the bound every cursor declared is taken as risky.
func (s *session) forgetCursor(name string) {
	if s.cursors[name] {
		if len(s.riskyClosed) >= maxNames {
			clear(s.riskyClosed)
			s.allRisky = true
		}
		s.riskyClosed[name] = true
	}
	delete(s.cursors, name)
}

func (s *session) closedRisky(name string) bool { return s.allRisky || s.riskyClosed[name] }

// rolledBack notes a ROLLBACK TO SAVEPOINT: portals bound before the
// savepoint come back, whatever was bound over them since, as corral
// recorded it: their unattributed columns are withheld, and what they
// run, corral may have forgotten as replaced.
func (s *session) rolledBack() {
	for k := range s.portalMasks {
		s.portalMasks[k], s.portalWithhold[k] = s.masks, true
	}
	for k := range s.portals {
		s.losePortals(k, s.portals[k])
	}
	if s.unnamedUnfiltered {
		s.unfiltered[""] = true
	}
}

// noteRollbackPortal notes a portal bound to ROLLBACK TO SAVEPOINT: it
// rolls back when it is executed, maybe long after its Bind, and Binds
// since (the server may have skipped them) are recorded over what comes
// back. Kept for the name, as a portal the server keeps may be executed
// later; past maxNames names, every Execute counts as one.
func (s *session) noteRollbackPortal(name string) {
	if !s.rollbackPortals[name] && len(s.rollbackPortals) >= maxNames {
		s.anyRollsBack = true
		return
	}
	s.rollbackPortals[name] = true
}

// noteCursorOps adds b to what name may run when fetched.
func (s *session) noteCursorOps(name string, b behind) {
	if _, ok := s.cursorOps[name]; !ok && len(s.cursorOps) >= maxNames {
		// Names closed since go first (a driver may give every portal
		// a name of its own), open ones only if all are. The server may
		// have skipped a CLOSE: a FETCH of a name no longer known is
		// refused from now on.
		for n := range s.cursorOps {
			_, cursor := s.cursors[n]
			if _, portal := s.portalMasks[n]; !cursor && !portal {
				delete(s.cursorOps, n)
			}
		}
		if len(s.cursorOps) >= maxNames {
			clear(s.cursorOps)
		}
		s.cursorOpsLost = true
	}
	b.ops = slices.DeleteFunc(b.ops, func(op string) bool { return op == "cursor" })
	s.cursorOps[name] = s.cursorOps[name].plus(b)
}

// behind is what a name (a cursor, a portal, an SQL prepared statement)
// runs when it is fetched or executed: FETCH and EXECUTE are decided with
// its operations, and the policy sees its tables and functions.
type behind struct {
	ops, tables, functions []string
}

// with adds what st was decided with.
func (b behind) with(st *Statement) behind {
	return b.plus(behind{st.decidedOps, st.Tables, st.Functions})
}

// plus is what b and o run, together.
func (b behind) plus(o behind) behind {
	return behind{union(b.ops, o.ops), union(b.tables, o.tables), union(b.functions, o.functions)}
}

// policyVersion is the version of the policy now (0 when the decider
// has none).
func (s *session) policyVersion() uint64 {
	if v, ok := s.h.Policy.(versioned); ok {
		return v.Version()
	}
	return 0
}

// maxNames bounds each kind of name a session keeps a record of (prepared
// statements, SQL prepared statements, cursors, portals), and maxHeld the
// statement text its prepared statements keep: one workload must not grow
// the node's agent without end. Drivers cache a few hundred statements.
const (
	maxNames = 4096
	maxHeld  = 64 << 20
)

// overNames refuses a statement that would give the session one name more
// than corral keeps track of.
func (s *session) overNames(st *Statement) string {
	switch {
	case st.Prepares != "":
		if _, ok := s.sqlPS[st.Prepares]; !ok && len(s.sqlPS) >= maxNames {
			return fmt.Sprintf("corral keeps track of at most %d SQL prepared statement names a session, DEALLOCATEd ones included; reconnect to start afresh", maxNames)
		}
	case st.Declares != "":
		if _, ok := s.cursors[st.Declares]; !ok && len(s.cursors) >= maxNames {
			return fmt.Sprintf("corral keeps track of at most %d cursors and portals a session; CLOSE some first", maxNames)
		}
	}
	return ""
}

// sqlPrepared is what corral decided of the SQL PREPAREs of a name: the
// operations an EXECUTE of it may perform, and whether its rows may carry
// masked data in columns no table vouches for. gone: DEALLOCATEd, so
// EXECUTE is refused until the name is prepared again.
type sqlPrepared struct {
	runs  behind
	risky bool
	gone  bool
}

// sqlGone marks an SQL prepared name as no longer to be EXECUTEd, keeping
// what it could do for a PREPARE of it the server might refuse.
func (s *session) sqlGone(name string) {
	if p, ok := s.sqlPS[name]; ok {
		p.gone = true
		s.sqlPS[name] = p
	}
}

// union returns the sorted, distinct words of a and b.
func union(a, b []string) []string {
	out := slices.Concat(a, b)
	slices.Sort(out)
	return slices.Compact(out)
}

// syntaxSettings change how the server reads statements; corral's parser
// would then read them differently (see passThrough). No policy can allow
// changing them through corral.
var syntaxSettings = map[string]bool{
	"client_encoding": true, "names": true, "standard_conforming_strings": true, "backslash_quote": true, "*": true,
}

func syntaxChange(st *Statement) string {
	for _, name := range st.Sets {
		if syntaxSettings[name] {
			if name == "*" {
				name = "every setting"
			}
			return fmt.Sprintf("changing %s is not allowed through corral", name)
		}
	}
	for _, t := range st.Tables {
		if t == "pg_settings" || t == "pg_catalog.pg_settings" {
			if slices.ContainsFunc(st.Ops, func(op string) bool { return op != "select" }) {
				return "changing settings through pg_settings is not allowed through corral"
			}
		}
	}
	return ""
}

// functionNames are the names a statement may call functions by: its
// calls, the names after a dot that may be attribute notation (attrPrefix
// and the name), its
// operators (opPrefix and the operator) and the types it casts to
// (castPrefix and the type).
func functionNames(st *Statement) []string {
	names := make([]string, 0, len(st.Functions)+len(st.attrNames)+len(st.operators))
	for _, f := range st.Functions {
		names = append(names, lastName(f))
	}
	for _, a := range st.attrNames {
		names = append(names, attrPrefix+a)
	}
	for _, op := range st.operators {
		names = append(names, opPrefix+op)
	}
	for _, t := range st.casts {
		names = append(names, castPrefix+t)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// callsVolatile reports whether a statement calls a function that may
// write: `SELECT purge_orders()` may delete as surely as DELETE, so it is
// the function operation, not just select. That is any function of the
// database's own, whatever its volatility says (a STABLE one may call a
// VOLATILE one, which writes), and an extension's volatile ones. A name
// after a dot counts too: `o.wipe` calls wipe(o) when no column is named
// wipe. When the catalog cannot answer, the answer is yes.
func (s *session) callsVolatile(st *Statement) bool {
	names, fs, err := s.functionFacts(st)
	if err != nil {
		s.h.Log.Warn("catalog lookup failed; functions count as the function operation", "session_id", s.c.SessionID, "err", err)
		s.catalogDoubt = true
		return true
	}
	for _, n := range names {
		if fs[n].volatile || s.ownFunction(n, fs[n]) {
			return true
		}
	}
	return false
}

// runsTypeCode reports whether the server may run code of the database's
// own for a statement through the types of its values, where the
// statement names none of it (see catalog.typeCode): it reads a table
// whose rows hold such a value, casts to such a type (also written as a
// call: tag('b')), or calls a function or operator that returns one.
// Reading a table counts whatever the statement does with its rows:
// which values become which types is the server's to infer. A statement
// with no values (BEGIN, COMMIT, SET) asks nothing. When the catalog
// cannot answer, the answer is yes.
func (s *session) runsTypeCode(st *Statement) bool {
	if len(st.Tables)+len(st.allCasts)+len(st.Functions)+len(st.operators) == 0 {
		return false
	}
	code, err := s.cat.typeCode(s.ctx)
	if err != nil {
		s.h.Log.Warn("catalog lookup failed; statements count as the function operation", "session_id", s.c.SessionID, "err", err)
		s.catalogDoubt = true
		return true
	}
	uncertain := s.uncertain()
	if uncertain && s.window.bindsTypeCode() {
		// Bound in the open transaction: the catalog cannot see it.
		return true
	}
	if len(code) == 0 {
		return false
	}
	for _, n := range s.callNames(st) {
		if code[n] {
			return true
		}
	}
	for _, c := range st.allCasts {
		if code[castPrefix+c] {
			return true
		}
	}
	for _, f := range st.Functions {
		if code[castPrefix+lastName(f)] {
			return true // a call by a type's name is a cast to it
		}
	}
	for _, t := range st.Tables {
		if code[relPrefix+lastName(t)] || uncertain && s.window.typedRelation(lastName(t)) {
			return true
		}
	}
	return false
}

// namesTypeWithCode reports whether a statement builds on (columns,
// casts, a domain's base) a type the database binds code to, or one made
// out of the catalog's sight on such a type: a table or type it makes
// holds such values for the rest of the transaction, where the catalog
// cannot see it. When the catalog cannot answer, the answer is yes.
func (s *session) namesTypeWithCode(st *Statement) bool {
	if len(st.columnTypes)+len(st.allCasts) == 0 {
		return false
	}
	code, err := s.cat.typeCode(s.ctx)
	if err != nil {
		return true
	}
	for _, t := range slices.Concat(st.columnTypes, st.allCasts) {
		if code[castPrefix+t] || s.window.typedType(t) {
			return true
		}
	}
	return false
}

// viewOps are the operations that the views a statement reads (the
// materialized views it refreshes) amount to beyond reading (see
// relation.runs): a view that calls set_config('role', ...) changes the
// role as the call would. (Reading a materialized view runs nothing.)
// When the catalog cannot answer, they are function.
func (s *session) viewOps(st *Statement) []string {
	names, info, err := s.relationFacts(st)
	var views []uint32
	for _, n := range names {
		views = append(views, info[n].views...)
	}
	var rels map[uint32]*relation
	if err == nil && len(views) > 0 {
		rels, err = s.cat.relations(s.ctx, views)
	}
	if err != nil {
		s.h.Log.Warn("catalog lookup failed; views count as the function operation", "session_id", s.c.SessionID, "err", err)
		s.catalogDoubt = true
		return []string{"function"}
	}
	var ops []string
	refresh := st.Command == "REFRESH MAT VIEW"
	for _, r := range rels {
		if r.kind == 'v' || refresh {
			ops = union(ops, r.runs)
		}
	}
	return ops
}

// ownFunction reports whether the function or operator name may be one of
// the database's own: the catalog says so; or, while the session holds
// catalog changes the catalog cannot see, the catalog cannot find it (a
// function made in the open transaction; casts and attribute names are
// not looked up so), or the changes named it (pg_temp.lower, a type a
// cast makes, a function attribute notation calls).
func (s *session) ownFunction(name string, f funcInfo) bool {
	if f.user {
		return true
	}
	if !s.uncertain() {
		return false
	}
	base, prefixed := name, false
	for _, p := range []string{opPrefix, castPrefix, attrPrefix} {
		if b, ok := strings.CutPrefix(name, p); ok {
			base, prefixed = b, p != opPrefix
			break
		}
	}
	return f.unknown && !prefixed || s.window.function(base)
}

// functionFacts and relationFacts are what the catalog says of the names
// a statement calls and reads; callsVolatile, risky and lineage all need
// them, and the catalog is asked once per decision.
func (s *session) functionFacts(st *Statement) ([]string, map[string]funcInfo, error) {
	names := s.callNames(st)
	if len(names) > 0 && !st.facts.fnsDone {
		st.facts.fns, st.facts.fnsErr = s.cat.userFunctions(s.ctx, names)
		st.facts.fnsDone = true
	}
	return names, st.facts.fns, st.facts.fnsErr
}

// callNames are the names a statement may call functions by (see
// functionNames), made once per decision: also the casts to PostgreSQL's
// type names once the session chose its search_path, where a type of the
// database's may stand before PostgreSQL's of the name.
func (s *session) callNames(st *Statement) []string {
	if st.facts.names != nil {
		return st.facts.names
	}
	names := st.fnNames
	if names == nil {
		names = functionNames(st)
	}
	if s.pathSet && len(st.shadowCasts) > 0 {
		names = slices.Clip(names)
		for _, c := range st.shadowCasts {
			names = append(names, castPrefix+c)
		}
	}
	st.facts.names = names
	return names
}

func (s *session) relationFacts(st *Statement) ([]string, map[string]byName, error) {
	names := make([]string, 0, len(st.Tables))
	for _, t := range st.Tables {
		names = append(names, lastName(t))
	}
	if len(names) > 0 && !st.facts.relsDone {
		st.facts.rels, st.facts.relsErr = s.cat.lookupNames(s.ctx, names)
		st.facts.relsDone = true
	}
	return names, st.facts.rels, st.facts.relsErr
}

// facts holds a statement's catalog answers for one decision.
type facts struct {
	names             []string // see callNames
	fnsDone, relsDone bool
	fns               map[string]funcInfo
	rels              map[string]byName
	fnsErr, relsErr   error
}

// risky reports whether a statement's result may carry masked data in
// columns that RowDescription attributes to no table: it reads a table with
// masked columns (or a parent or child of one), a view, something the
// catalog does not know (a CTE), rows from a function, or calls a function
// of the database's own. Their unattributed columns are
// then withheld. When the catalog cannot answer, the answer is yes.
func (s *session) risky(st *Statement) bool {
	mk := s.masks
	if mk == nil || len(mk.columns) == 0 {
		return false
	}
	if st.fromFunction {
		return true
	}
	if st.commits {
		// A WITH HOLD cursor's query runs to its end now: what the
		// server says meanwhile (an XML parser's warning quoting its
		// input) speaks of the rows it reads.
		for _, risky := range s.cursors {
			if risky {
				return true
			}
		}
	}
	// A function of the database's own may read a masked table and
	// return what it read: `SELECT email_of(1)`.
	fns, fs, err := s.functionFacts(st)
	if err != nil {
		s.h.Log.Warn("catalog lookup failed; unattributed columns withheld", "session_id", s.c.SessionID, "err", err)
		return true
	}
	for _, n := range fns {
		if s.ownFunction(n, fs[n]) {
			return true
		}
	}
	if len(st.Tables) == 0 {
		return false
	}
	names, info, err := s.relationFacts(st)
	if err != nil {
		s.h.Log.Warn("catalog lookup failed; unattributed columns withheld", "session_id", s.c.SessionID, "err", err)
		return true
	}
	for _, n := range names {
		b, ok := info[n]
		if s.unvouched(n, b, ok) || mk.tables[strings.ToLower(n)] {
			return true
		}
		for _, a := range slices.Concat(b.ancestors, b.descendants) {
			if mk.tables[strings.ToLower(a)] {
				return true
			}
		}
	}
	return false
}

// unvouched reports whether a relation name (b, ok: what the catalog says
// of it) may carry masked values the catalog cannot attribute: no
// relation it knows (a CTE, one made out of its sight), a view, or one
// the session's own catalog changes named while they are out of sight.
func (s *session) unvouched(name string, b byName, ok bool) bool {
	return !ok || strings.ContainsAny(b.kinds, "vm") || s.uncertain() && s.window.relation(name)
}

// lineage finds, among the relations a statement names, those through
// which masked values flow under other names: views that read masked
// columns, and parents and children of tables with masked columns (a
// parent's rows include its children's; a child has its parent's
// columns); and, for a statement whose values leave for a table or
// a side channel, a function of the database's own it calls. masks.leak
// treats them as masked. An error means the catalog could not say.
func (s *session) lineage(st *Statement) (lineage, error) {
	mk := s.masks
	var l lineage
	if mk == nil || len(mk.columns) == 0 {
		return l, nil
	}
	if st.escapes() || len(st.attrNames) > 0 {
		fns, fs, err := s.functionFacts(st)
		if err != nil {
			return l, err
		}
		for _, n := range fns {
			if st.escapes() && l.function == "" && s.ownFunction(n, fs[n]) {
				l.function = n
			}
			if a, ok := strings.CutPrefix(n, attrPrefix); ok && (fs[n].found || s.ownFunction(n, fs[n])) {
				if l.rowFunctions == nil {
					l.rowFunctions = map[string]bool{}
				}
				l.rowFunctions[strings.ToLower(a)] = true
			}
		}
	}
	if len(st.Tables) == 0 {
		return l, nil
	}
	names, info, err := s.relationFacts(st)
	if err != nil {
		return l, err
	}
	if s.uncertain() {
		// A relation the catalog does not know may be a view made in the
		// open transaction; one it knows as a view may have been made
		// anew there.
		for _, n := range names {
			if b, ok := info[n]; s.unvouched(n, b, ok) {
				if l.views == nil {
					l.views = map[string]bool{}
				}
				l.views[strings.ToLower(n)] = true
			}
		}
	}
	var views []uint32
	for name, b := range info {
		for _, k := range slices.Concat(b.ancestors, b.descendants) {
			if mk.tables[strings.ToLower(k)] {
				if l.kin == nil {
					l.kin = map[string][]string{}
				}
				l.kin[strings.ToLower(name)] = append(l.kin[strings.ToLower(name)], strings.ToLower(k))
			}
		}
		views = append(views, b.views...)
	}
	if len(views) == 0 {
		return l, nil
	}
	rels, err := s.cat.relations(s.ctx, views)
	if err != nil {
		return l, err
	}
	for _, r := range rels {
		if r.opaque {
			if l.views == nil {
				l.views = map[string]bool{}
			}
			l.views[strings.ToLower(r.name)] = true
			continue
		}
		for _, dep := range r.deps {
			parts := strings.SplitN(dep, ".", 3)
			if (parts[2] == "*" && mk.tableMethod(parts[0], parts[1]) != "") || (parts[2] != "*" && mk.method(parts[0], parts[1], parts[2]) != "") {
				if l.views == nil {
					l.views = map[string]bool{}
				}
				l.views[strings.ToLower(r.name)] = true
				break
			}
		}
	}
	return l, nil
}

// refuse records a refusal that was not put to the policy (an
// unparsable statement, a name the session may not use, ...): every
// refusal a client is told of is in the audit trail, not only the
// policy's. It returns reason.
func (s *session) refuse(text string, ops []string, reason string) string {
	if ops == nil {
		ops = []string{}
	}
	s.c.Emit(intercept.Event{Event: intercept.EventStatement, Statement: &intercept.StatementInfo{
		Text: text, Operations: ops, Decision: policy.Deny, Reason: reason,
	}})
	s.audited = true
	return reason
}

// refused records reason unless decide already did.
func (s *session) refused(text string, ops []string, reason string) {
	if !s.audited {
		s.refuse(text, ops, reason)
	}
}

// unparsed is how a statement corral could not parse is recorded: its
// text may hold anything, secrets in its literals included, and only a
// parse tells them apart. The parser's complaint quotes the text too
// (`at or near "'s3cret"`): it is recorded through unquote.
func unparsed(sql string) string { return fmt.Sprintf("(not parsed: %d bytes)", len(sql)) }

func decisionOf(reason string, d policy.Decision) string {
	if reason != "" {
		return policy.Deny
	}
	return d.Result
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// refusal is what corral sends the server in place of a denied statement:
// not SQL at all, so the server runs nothing and fails at once. The error
// reaches the client in order with everything else (corral rewrites it to
// say why), the extended protocol skips to the next Sync as it would for
// any error, and an open transaction fails on the server too, so client
// and server agree that nothing after it commits.
const refusal = "corral refused this statement"

// setMasks makes ms the current masks, compiling them only when they
// changed: a session's decisions carry the same masks statement after
// statement.
func (s *session) setMasks(ms []policy.Mask) {
	if s.masks != nil && slices.EqualFunc(ms, s.maskSrc, func(a, b policy.Mask) bool {
		return a.Method == b.Method && a.Filters == b.Filters && slices.Equal(a.Columns, b.Columns) && slices.Equal(a.Detect, b.Detect)
	}) {
		return
	}
	before := s.masks
	s.masks, s.maskSrc = compileMasks(ms), ms
	s.maskedNow.Store(s.masks)
	if before == nil && s.masks == nil {
		return
	}
	if s.masks.restricts(before) {
		s.markUnfiltered()
	}
	// What the names of this session could return was judged under the
	// masks before (a reload changed them): their unattributed columns
	// are withheld from now on, and bound portals are masked anew.
	for k := range s.cursors {
		s.cursors[k] = true
	}
	for k, v := range s.sqlPS {
		v.risky = true
		s.sqlPS[k] = v
	}
	for k := range s.portalMasks {
		s.portalMasks[k], s.portalWithhold[k] = s.masks, true
	}
}

func (s *session) stmt(name string) (*prepared, bool) {
	s.stmtsMu.Lock()
	defer s.stmtsMu.Unlock()
	p, ok := s.stmts[name]
	return p, ok
}

func (s *session) setStmt(name string, p *prepared) {
	s.stmtsMu.Lock()
	defer s.stmtsMu.Unlock()
	s.putStmt(name, p)
}

// putStmt records p under name (nil: nothing), counting what the records
// hold; stmtsMu is held.
func (s *session) putStmt(name string, p *prepared) {
	if old, ok := s.stmts[name]; ok {
		s.held -= old.size()
	}
	if p == nil {
		delete(s.stmts, name)
	} else {
		s.stmts[name] = p
		s.held += p.size()
	}
}

// unmade forgets the statement a Parse of a named statement recorded,
// when the server skipped or refused the Parse. What rec was chained to
// (a statement a Close before it in the batch did not close after all)
// takes its place, also as what a later Parse of the name was chained to.
func (s *session) unmade(name string, rec *prepared) {
	s.stmtsMu.Lock()
	defer s.stmtsMu.Unlock()
	cur, ok := s.stmts[name]
	if !ok {
		return
	}
	prev := rec.prev.Load()
	if cur == rec {
		s.putStmt(name, prev)
		return
	}
	for q := cur; q != nil; q = q.prev.Load() {
		if q.prev.Load() == rec {
			q.prev.Store(prev)
			return
		}
	}
}

// closedStmt forgets what the server held under name before a Close it
// has confirmed: the records made up to closeAt. Parses of the name behind
// the Close are no longer chained to them: skipped, they leave the name
// empty.
func (s *session) closedStmt(name string, closeAt uint64) {
	s.stmtsMu.Lock()
	defer s.stmtsMu.Unlock()
	cur, ok := s.stmts[name]
	if !ok {
		return
	}
	if cur.madeAt <= closeAt {
		s.putStmt(name, nil)
		return
	}
	for q := cur; q != nil; q = q.prev.Load() {
		if p := q.prev.Load(); p != nil && p.madeAt <= closeAt {
			q.prev.Store(nil)
			return
		}
	}
}

// newRecord numbers a new record of a statement name, in the order the
// client sent their Parses: a Close is confirmed for the records before it.
func (s *session) newRecord(p *prepared) *prepared {
	s.parses++
	p.madeAt = s.parses
	return p
}

// mayHold reports whether the server may hold a statement under the name
// p is the record of: p, or one it is chained to, is not a refusal.
func (p *prepared) mayHold() bool {
	for q := p; q != nil; q = q.prev.Load() {
		if q.denied == "" || q.lost {
			return true
		}
	}
	return false
}

// dropStmt forgets the statement a Parse recorded, unless a later Parse of
// the name has replaced it.
func (s *session) dropStmt(name string, rec *prepared) {
	s.stmtsMu.Lock()
	defer s.stmtsMu.Unlock()
	if old, ok := s.stmts[name]; ok && (rec == nil || old == rec) {
		s.putStmt(name, nil)
	}
}

// overStmts says why a Parse of name would give the session more prepared
// statements, or more statement text, than corral keeps; "" when it would
// not.
func (s *session) overStmts(name string, text int) string {
	s.stmtsMu.Lock()
	defer s.stmtsMu.Unlock()
	old, ok := s.stmts[name]
	named := len(s.stmts)
	if _, unnamed := s.stmts[""]; unnamed {
		named--
	}
	switch {
	case !ok && name != "" && named >= maxNames:
		return fmt.Sprintf("corral keeps track of at most %d prepared statements a session; Close some first", maxNames)
	case ok && s.held-old.size()+256+2*text > maxHeld, !ok && s.held+256+2*text > maxHeld:
		return fmt.Sprintf("corral keeps at most %d MiB of prepared statement text a session; Close some statements first", maxHeld>>20)
	}
	return ""
}

func (s *session) classify(sql string) ([]Statement, error) {
	if len(sql) > maxSQL {
		return nil, fmt.Errorf("the statement is longer than corral inspects (%d bytes)", maxSQL)
	}
	return s.h.classifier.classify(s.ctx, sql)
}

// unsettledReason refuses new SQL text sent behind an Execute that may
// have changed how the server reads it (see session.unsettled).
const unsettledReason = "a statement that may change how the server reads SQL (the database's own code, DO, CALL) ran earlier in this batch: send Sync before the next statement"

func (s *session) onQuery(m *pgproto3.Query) error {
	stmts, err := s.classify(m.String)
	reason := ""
	// The query is a unit of its own: a name it declares is fresh for
	// what follows in it, an error ending the rest; not for what the
	// client sends after it, which runs whether the query failed or not.
	s.unit++
	defer func() { s.unit++ }()
	switch {
	case err != nil:
		reason = err.Error()
		s.refuse(unparsed(m.String), nil, unquote(reason))
	case s.unsettled:
		// Parsed, but the server may read it otherwise (recorded as
		// corral read it).
		text := "QUERY"
		if len(stmts) > 0 {
			text = stmts[0].auditText()
		}
		reason = s.refuse(text, nil, unsettledReason)
	default:
		s.querying = true
		reason = s.decide(stmts)
		s.querying = false
	}
	s.countOps(reason, len(stmts))
	if reason != "" {
		s.expect(expectation{kind: expQuery, deny: reason})
		return s.send(&pgproto3.Query{String: refusal})
	}
	e := expectation{kind: expQuery, masks: s.masks, withhold: s.withholdNext}
	for _, st := range stmts {
		if st.Declares != "" {
			e.declares = append(e.declares, s.renewing(st.Declares))
		}
	}
	if s.c.Recording() {
		e.seqs, e.sent = slices.Clone(s.seqs), sinceStart()
	}
	copyIn := slices.ContainsFunc(stmts, func(st Statement) bool { return st.CopyIn })
	if s.barrier || copyIn {
		e.answered = make(chan struct{})
	}
	s.expect(e)
	if err := s.send(m); err != nil || e.answered == nil {
		return err
	}
	return s.awaitCopy(e.answered, copyIn)
}

// awaitCopy waits for the server's answer to a statement; when the
// statement may start COPY FROM STDIN, the answer is the copy starting (or
// the statement ending without one), and the client is then in the copy.
// Until the server has said which, corral reads nothing more from the
// client: a Sync means nothing to a server that is copying and gets an
// answer from one that is not.
func (s *session) awaitCopy(answered chan struct{}, copyIn bool) error {
	if err := s.awaitAnswer(answered); err != nil {
		return err
	}
	s.clientCopy = copyIn && s.copyIn.Load()
	return nil
}

func (s *session) onParse(m *pgproto3.Parse) error {
	stmts, err := s.classify(m.Query)
	reason := ""
	// One name space on the server: an SQL PREPARE of the name makes the
	// server refuse this Parse. A DEALLOCATE or Close of it corral saw
	// sent may have been skipped or refused, and corral does not learn
	// which: a name once SQL PREPAREd is not given to a Parse.
	_, sqlHeld := s.sqlPS[m.Name]
	sqlHeld = sqlHeld && m.Name != ""
	if m.Name != "" && !sqlHeld {
		// Whatever the server does with this Parse, an SQL PREPARE of the
		// same name is no longer known to be what EXECUTE runs.
		s.sqlGone(m.Name)
	}
	exists := false
	var closed *prepared // what a Close before it in the batch closes
	p, ok := s.stmt(m.Name)
	switch {
	case m.Name == "":
	case sqlHeld && s.sqlPS[m.Name].gone:
		err = fmt.Errorf("a statement named %q was SQL PREPAREd in this session; Parse under another name", m.Name)
		exists = true
	case !sqlHeld && ok && s.closing[m.Name] == p:
		closed = p
	case sqlHeld, ok && p.mayHold():
		// The server refuses to redefine a named statement; corral must
		// not believe it did, or a later Bind would be checked against
		// the wrong statement.
		err = fmt.Errorf("prepared statement %q already exists", m.Name)
		exists = true
	}
	over := ""
	if !exists {
		over = s.overStmts(m.Name, len(m.Query))
	}
	s.audited = false
	switch {
	case s.unsettled:
		reason = unsettledReason
	case err != nil && !exists:
		reason = err.Error()
		s.refuse(unparsed(m.Query), nil, unquote(reason))
	case err != nil:
		reason = err.Error()
	case over != "":
		reason = over
	case len(stmts) > 1:
		reason = "a prepared statement holds one statement"
	case len(stmts) == 1:
		stmts[0].lossyParams = slices.ContainsFunc(m.ParameterOIDs, lossyParam)
		if own, all := paramCasts(m.ParameterOIDs); len(all) > 0 {
			// Copies: the classifier's cache shares the statement's arrays.
			stmts[0].allCasts = append(slices.Clip(stmts[0].allCasts), all...)
			if len(own) > 0 {
				stmts[0].casts = append(slices.Clip(stmts[0].casts), own...)
				stmts[0].fnNames = functionNames(&stmts[0])
			}
		}
		s.preparing = true
		reason = s.decide(stmts)
		s.preparing = false
	}
	if reason != "" {
		text, ops := "PARSE", []string(nil)
		if len(stmts) == 1 {
			text, ops = stmts[0].auditText(), stmts[0].Ops
		}
		s.refused(text, ops, reason)
	}
	s.countParse(reason)
	if reason != "" {
		var rec *prepared // what skipping the refusal gives back (see unmade)
		switch {
		case m.Name == "":
			// The unnamed statement: refused, and what the server may
			// still hold if it skips the refusal.
			s.setStmt("", s.chained(s.newRecord(&prepared{denied: reason})))
		case closed != nil:
			// Skipped with the Close, the refusal leaves the server
			// holding the statement before it.
			rec = chainTo(s.newRecord(&prepared{denied: reason}), closed)
			s.setStmt(m.Name, rec)
		case !exists && over == "":
			// The server will hold nothing under the name; what it
			// already holds, corral keeps deciding Binds by.
			s.setStmt(m.Name, s.newRecord(&prepared{denied: reason}))
		case over != "":
			s.setStmt(m.Name, nil) // and holds nothing under it after this Parse
		}
		s.expect(expectation{kind: expParse, name: m.Name, deny: reason, rec: rec})
		return s.send(&pgproto3.Parse{Name: m.Name, Query: refusal})
	}
	// decide filled in the statement's normalized text: kept here, it is
	// not computed again at every Bind.
	rec := s.newRecord(&prepared{stmt: stmts})
	switch {
	case m.Name == "":
		rec = s.chained(rec)
	case closed != nil:
		// Skipped with the Close after an error, the Parse leaves the
		// server holding the statement before it.
		rec = chainTo(rec, closed)
	}
	// Recorded before it is expected: a Parse the server already skips is
	// dropped again at once.
	s.setStmt(m.Name, rec)
	s.expect(expectation{kind: expParse, name: m.Name, rec: rec})
	return s.send(m)
}

// chained links a new record of the unnamed statement to what the server
// may hold instead until it confirms the Parse: the record before, when
// the Parse is not first in its batch. A chain longer than maxPending is
// cut into a refusal, so that it stays bounded however long the server
// goes without confirming.
func (s *session) chained(rec *prepared) *prepared {
	old, ok := s.stmt("")
	if !ok || s.inBatch == 0 {
		return rec
	}
	return chainTo(rec, old)
}

// chainTo links rec to old, what the server may hold under the name
// instead until it confirms rec's Parse.
func chainTo(rec, old *prepared) *prepared {
	n := 0
	for q := old; q != nil && n <= maxPending; q = q.prev.Load() {
		n++
	}
	if n > maxPending {
		// It stands for the Parses it replaces: a Close confirmed
		// after the newest of them forgets it, not one before.
		old = &prepared{denied: fmt.Sprintf("more than %d Parses of one statement name await the server's answer; Sync before binding it", maxPending), lost: true, madeAt: old.madeAt}
	}
	rec.prev.Store(old)
	return rec
}

// onBind enforces the decision at every execution: a prepared statement
// the policy allowed at Parse may have been forbidden by a reload since.
// Decisions are cached, so asking again costs a map lookup.
func (s *session) onBind(m *pgproto3.Bind) error {
	s.audited = false
	p, _ := s.stmt(m.PreparedStatement)
	reason, copyIn := "", false
	var (
		runs []Statement // what the portal runs, as decided
		from weak.Pointer[prepared]
	)
	version := s.policyVersion() // before deciding: a reload meanwhile decides again
	_, known := s.portalMasks[m.DestinationPortal]
	_, cursor := s.cursors[m.DestinationPortal]
	switch {
	case m.DestinationPortal != "" && !known && !cursor && (len(s.portalMasks) >= maxNames || len(s.cursors) >= maxNames):
		reason = fmt.Sprintf("corral keeps track of at most %d cursors and portals a session; Close some first", maxNames)
	case p == nil:
		reason = fmt.Sprintf("statement %q was not prepared through corral", m.PreparedStatement)
	case p.denied != "":
		reason = p.denied
	default:
		stmts, denied, ok := p.candidates()
		switch {
		case !ok:
			reason = fmt.Sprintf("more than %d Parses of the unnamed statement await the server's answer; Sync before binding it", maxPending)
		case denied != "":
			reason = "the server may still hold an unnamed statement corral refused (" + denied + "); Sync before binding the new one"
		case len(stmts) > 0:
			copyIn = slices.ContainsFunc(stmts, func(st Statement) bool { return st.CopyIn })
			if copyIn && !s.portalCopy[m.DestinationPortal] && len(s.portalCopy) >= maxNames {
				// Such a name is kept for good (see below): the names
				// are bounded here, not by closing them.
				reason = fmt.Sprintf("corral keeps track of at most %d portal names bound to COPY FROM STDIN a session; bind it to a name used before, or reconnect", maxNames)
			} else {
				s.bound = m // its values, for reviewers
				reason = s.decide(stmts)
				s.bound = nil
				runs, from = stmts, weak.Make(p)
			}
		}
	}
	s.countBind(p, reason)
	if reason != "" {
		s.refused(fmt.Sprintf("BIND of %q", m.PreparedStatement), nil, reason)
		// A failing Parse in front of the Bind: the server skips the Bind,
		// and what follows up to Sync, and the client gets the reason.
		s.expect(
			expectation{kind: expParse, swallow: true, deny: reason},
			expectation{kind: expBind},
		)
		return s.send(
			&pgproto3.Parse{Name: deniedStatement, Query: refusal},
			m,
		)
	}
	s.batchBarrier = s.batchBarrier || s.barrier
	if m.DestinationPortal == "" {
		// Run, this Bind replaces the unnamed portal; skipped, the batch
		// has failed and no Execute runs the old one.
		s.unnamedUnfiltered = s.unnamedUnfiltered || s.unfiltered[""]
		delete(s.unfiltered, "")
	}
	if slices.ContainsFunc(runs, func(st Statement) bool { return st.rollsBack }) {
		s.noteRollbackPortal(m.DestinationPortal)
	}
	if copyIn {
		// Kept for the name, whatever is bound to it later: the server may
		// refuse a later Bind (or skip a Close) and keep this portal.
		s.portalCopy[m.DestinationPortal] = true
	}
	confirmed, older := s.notePortal(m.DestinationPortal, portalRec{from: from, version: version, ready: s.readies})
	s.portalBarrier[m.DestinationPortal] = s.barrier || older && s.portalBarrier[m.DestinationPortal]
	if name := m.DestinationPortal; name != "" {
		var b behind
		for i := range runs {
			b = b.with(&runs[i])
		}
		s.noteCursorOps(name, b) // FETCH reads a portal as a cursor
	}
	s.portalMasks[m.DestinationPortal] = s.masks
	// A named portal the server already holds survives a Bind it refuses:
	// what the name could return only grows.
	name := m.DestinationPortal
	s.portalWithhold[name] = s.withholdNext || name != "" && (s.portalWithhold[name] || s.cursors[name] || s.closedRisky(name))
	if m.DestinationPortal != "" {
		// Portals and SQL cursors share one name space: FETCH reads a
		// portal by its name as it would a cursor.
		s.cursors[m.DestinationPortal] = s.cursors[m.DestinationPortal] || s.withholdNext
	}
	if len(s.seqs) > 0 {
		s.portalSeq[m.DestinationPortal] = s.seqs[0]
	}
	e := expectation{kind: expBind, confirms: confirmed}
	if name != "" {
		e.renew = s.renewing(name)
		s.made(name)
	}
	s.expect(e)
	return s.send(m)
}

// changesCatalog tells whether a statement with these operations may
// change what the catalog says of relations and functions: DDL, and DO
// blocks and procedures, which run it as often as not (EXECUTE 'CREATE
// ...'). The database's own functions may too (runsCode), but are too
// common to have the catalog checked after each; while the session holds
// them, it is uncertain all the same.
func changesCatalog(ops []string) bool {
	return slices.Contains(ops, "ddl") || slices.Contains(ops, "drop") || slices.Contains(ops, "do") || slices.Contains(ops, "call")
}

// runsCode tells whether a statement with these operations runs the
// database's own functions, which may change the catalog out of its
// sight like DDL, but are too common to have it checked after each.
func runsCode(ops []string) bool {
	return slices.Contains(ops, "function")
}

// barrierOps reports whether a statement with these operations is a
// barrier (see session.barrier): it runs code corral does not read.
func barrierOps(ops []string) bool {
	return slices.ContainsFunc(ops, func(op string) bool { return op == "function" || op == "do" || op == "call" })
}

// versioned is a policy that tells its version: a reload changes it.
type versioned interface{ Version() uint64 }

// refreshMasks brings the session's masks up to a reload that came after
// its last decision. An Execute decides nothing itself, and as the first
// request after the reload it would read a portal or cursor by masks the
// policy no longer gives. The masks come from a decision to select; when
// that is not allowed, the masks cannot be known, and every name held is
// treated as made without the current check.
func (s *session) refreshMasks() {
	v, ok := s.h.Policy.(versioned)
	if !ok || v.Version() == s.maskVersion {
		return
	}
	d, err := s.h.Policy.Decide(s.ctx, s.c.Input(policy.Action{Kind: policy.KindSQL, Operations: []string{"select"}, SQL: &policy.SQL{Command: "EXECUTE"}}))
	if err == nil && (d.Result == policy.Allow || d.Result == policy.Review) {
		s.setMasks(d.Mask)
		s.maskVersion = d.PolicyVersion
		return
	}
	s.markUnfiltered()
}

// markUnfiltered marks every cursor and portal the session holds as made
// without the filters check the masks now ask for (see unfiltered).
func (s *session) markUnfiltered() {
	if s.unfiltered == nil {
		s.unfiltered = map[string]bool{}
	}
	for _, names := range []map[string]bool{s.cursors, s.portalWithhold} {
		for k := range names {
			s.unfiltered[k] = true
		}
	}
	clear(s.renewed)
	clear(s.freshIn)
}

// stillUnfiltered reports whether name holds a cursor or portal made
// before the masks came to restrict filters: marked, and neither made
// anew as the server confirmed nor earlier in this batch or query.
func (s *session) stillUnfiltered(name string) bool {
	if !s.unfiltered[name] {
		return false
	}
	if u, ok := s.freshIn[name]; ok && u == s.unit {
		return false
	}
	if r := s.renewed[name]; r != nil && r.Load() {
		delete(s.unfiltered, name)
		delete(s.renewed, name)
		return false
	}
	return true
}

// renewing returns the flag the server sets when it confirms that name,
// marked unfiltered, was made anew; nil for a name not marked.
func (s *session) renewing(name string) *atomic.Bool {
	if !s.unfiltered[name] {
		return nil
	}
	if s.renewed == nil {
		s.renewed = map[string]*atomic.Bool{}
	}
	r := s.renewed[name]
	if r == nil {
		r = &atomic.Bool{}
		s.renewed[name] = r
	}
	return r
}

// made notes that name was bound or declared in the current batch or
// query: what follows in it reads the new one, or nothing.
func (s *session) made(name string) {
	if !s.unfiltered[name] {
		return
	}
	if s.freshIn == nil {
		s.freshIn = map[string]uint64{}
	}
	s.freshIn[name] = s.unit
}

// describedPortal is a client's Describe of a portal and the masks its
// answer is planned with.
type describedPortal struct {
	name     string
	masks    *masks
	withhold bool
	ok       bool
}

// portalMasking is what the rows of a portal are masked by: the decision
// behind its Bind, or for a portal the client did not Bind (an SQL
// cursor) the latest decision, withholding what no table vouches for.
func (s *session) portalMasking(name string) (*masks, bool) {
	if mk, bound := s.portalMasks[name]; bound {
		return mk, s.portalWithhold[name]
	}
	return s.masks, true
}

// onExecute runs a portal. described is the client's message just before
// it, when that was a Describe of a portal.
func (s *session) onExecute(m *pgproto3.Execute, described describedPortal) error {
	s.refreshMasks()
	if s.anyRollsBack || s.rollbackPortals[m.Portal] {
		s.rolledBack() // what this Execute may run rolls back now
	}
	if m.Portal != "" && s.stillUnfiltered(m.Portal) || m.Portal == "" && s.unfiltered[""] {
		// As a refused Bind: a failing Parse in front, and the server
		// skips the Execute.
		reason := fmt.Sprintf("portal %q was bound before the masks came to restrict filters; bind it again under another name, or reconnect", m.Portal)
		s.refuse(fmt.Sprintf("EXECUTE of portal %q", m.Portal), nil, reason)
		return s.refuseExecute(m, reason)
	}
	s.barrier = false
	if reason, decided := s.decideAgain(m.Portal); decided {
		s.countOps(reason, 1)
		if reason != "" {
			return s.refuseExecute(m, reason)
		}
	}
	cursorOps, declared := s.cursorOps[m.Portal]
	if s.barrier || s.portalBarrier[m.Portal] || barrierOps(cursorOps.ops) || !declared && m.Portal != "" && len(s.portals[m.Portal]) == 0 {
		// What runs now may change how the server reads SQL, which it
		// reports at the batch's Sync: that Sync is awaited, and no new
		// SQL text goes before it.
		s.batchBarrier, s.unsettled = true, true
	}
	mk, withhold := s.portalMasking(m.Portal)
	if mk != nil && described != (describedPortal{name: m.Portal, masks: mk, withhold: withhold, ok: true}) {
		// Results of Execute carry no RowDescription; ask for the portal's
		// so its columns can be masked, and keep the answer from the client.
		// (The server answers a Describe of the portal just before, as
		// libpq and pgx send, with the plan of this Execute.)
		s.expect(expectation{kind: expDescribePortal, name: m.Portal, swallow: true, masks: mk, withhold: withhold})
		if err := s.send(&pgproto3.Describe{ObjectType: 'P', Name: m.Portal}); err != nil {
			return err
		}
	}
	e := expectation{kind: expExecute, name: m.Portal, masks: mk, withhold: withhold}
	if seq, ok := s.portalSeq[m.Portal]; ok && s.c.Recording() {
		e.seqs, e.sent = []uint64{seq}, sinceStart()
	}
	copyIn := s.portalCopy[m.Portal]
	if copyIn {
		e.answered = make(chan struct{})
	}
	s.expect(e)
	msgs := []pgproto3.FrontendMessage{m}
	if copyIn {
		// The server answers an Execute only at Sync or Flush, and the
		// client waits for corral, which waits for the answer.
		msgs = append(msgs, &pgproto3.Flush{})
	}
	if err := s.send(msgs...); err != nil || !copyIn {
		return err
	}
	return s.awaitCopy(e.answered, true)
}

// refuseExecute refuses an Execute as a refused Bind is: a failing Parse
// in front, and the server skips the Execute.
func (s *session) refuseExecute(m *pgproto3.Execute, reason string) error {
	s.expect(
		expectation{kind: expParse, swallow: true, deny: reason},
		expectation{kind: expExecute, name: m.Portal},
	)
	return s.send(&pgproto3.Parse{Name: deniedStatement, Query: refusal}, m)
}

// portalRec is one Bind of a portal name: the prepared record whose
// statements it runs (not kept alive for it: prepared statements are
// bounded in their text, portals are not), the policy it was decided
// under, the ReadyForQuery that will follow it (session.readies), and
// whether the server confirmed it. A
// name may hold any of its unconfirmed Binds' portals, or the one before
// them: the server refuses a Bind to a named portal it holds, and skips
// one in a failed batch.
type portalRec struct {
	from      weak.Pointer[prepared]
	version   uint64
	ready     uint64
	confirmed *atomic.Bool
}

// livePortals drops the records of name the server no longer holds:
// those before a Bind it confirmed (which replaced them, or found the name
// free), and those bound before a ReadyForQuery outside any transaction.
func (s *session) livePortals(name string) []portalRec {
	recs := s.portals[name]
	last := 0
	for i, r := range recs {
		if r.confirmed.Load() {
			last = i
		}
	}
	idle := s.idleThrough.Load()
	if l, ok := s.portalLost[name]; ok && (idle >= l.at || len(recs) > 0 && recs[last].confirmed.Load() && recs[last].ready+1 >= l.at) {
		// What was forgotten is gone: its transaction ended, or a Bind
		// made since replaced it.
		delete(s.portalLost, name)
	}
	recs = slices.DeleteFunc(recs[last:], func(r portalRec) bool { return r.ready < idle })
	if len(recs) == 0 {
		delete(s.portals, name)
		return nil
	}
	s.portals[name] = recs
	return recs
}

// portalLoss is what corral forgot of a portal name: from when (one past
// session.readies then: it is gone once the server has been idle since,
// or confirmed a later Bind of the name) and the oldest policy version
// what was forgotten was decided under (0 if unknown).
type portalLoss struct{ at, version uint64 }

// losePortals notes that recs of name are forgotten.
func (s *session) losePortals(name string, recs []portalRec) {
	l, ok := s.portalLost[name]
	l.at = s.readies + 1
	for _, r := range recs {
		if !ok || r.version < l.version {
			l.version, ok = r.version, true
		}
	}
	s.portalLost[name] = l
}

// notePortal records a Bind of name; older says the name may still hold
// an earlier portal.
func (s *session) notePortal(name string, r portalRec) (confirmed *atomic.Bool, older bool) {
	recs := s.livePortals(name)
	if len(recs) >= maxPending {
		s.losePortals(name, recs[:1])
		recs = recs[1:]
	}
	r.confirmed = new(atomic.Bool)
	s.portals[name] = append(recs, r)
	return r.confirmed, len(recs) > 0
}

// decideAgain decides what a portal may run again when the policy changed
// since it was bound: a reload reaches portals as it reaches prepared
// statements at their next Bind. A name the client did not Bind (an SQL
// cursor) is decided as FETCH of it would be, whatever the version.
// decided says whether anything was put to the policy.
func (s *session) decideAgain(portal string) (reason string, decided bool) {
	now := s.policyVersion()
	if now == 0 {
		return "", false
	}
	recs := s.livePortals(portal)
	loss, lost := s.portalLost[portal]
	if len(recs) == 0 && !lost {
		stmts, err := Classify(`FETCH FORWARD ALL FROM "` + strings.ReplaceAll(portal, `"`, `""`) + `"`)
		if err != nil || len(stmts) != 1 {
			return s.refuse(fmt.Sprintf("EXECUTE of portal %q", portal), nil, "corral could not classify the execution of a cursor"), true
		}
		return s.decide(stmts), true
	}
	stale := lost && loss.version != now
	for _, r := range recs {
		stale = stale || r.version != now
	}
	if !stale {
		return "", false
	}
	refuse := func(why string) (string, bool) {
		return s.refuse(fmt.Sprintf("EXECUTE of portal %q", portal), nil, fmt.Sprintf("the policy changed since portal %q was bound, and %s: bind it again", portal, why)), true
	}
	if lost {
		return refuse("corral no longer knows all it may run")
	}
	var stmts []Statement
	for _, r := range recs {
		if r.from == (weak.Pointer[prepared]{}) {
			continue // bound to an empty statement
		}
		p := r.from.Value()
		if p == nil {
			return refuse("its statement was closed since")
		}
		c, _, ok := p.candidates()
		if !ok {
			return refuse("too many statements await the server's answer")
		}
		stmts = append(stmts, c...)
	}
	if len(stmts) > 0 {
		if reason = s.decide(stmts); reason != "" {
			// The server skipped the Execute, and the portal may live on
			// (past a ROLLBACK TO): it is decided again next time.
			return reason, true
		}
	}
	for i := range recs {
		recs[i].version = now
	}
	return "", len(stmts) > 0
}

// largeObjectCalls are the OIDs of the functions behind the client
// libraries' large-object interface (lo_open, loread, lowrite, lo_lseek,
// ...; not the server-side lo_import and lo_export, which read and write
// the server's files).
var largeObjectCalls = map[uint32]bool{
	715: true, 952: true, 953: true, 954: true, 955: true, 956: true, 957: true, 958: true,
	964: true, 1004: true, 3170: true, 3171: true, 3172: true,
}

func (s *session) onFunctionCall(m *pgproto3.FunctionCall) error {
	text := fmt.Sprintf("FUNCTION CALL oid:%d", m.Function)
	stmts, reason := s.callByNumber(m)
	if reason != "" {
		s.refuse(text, []string{"function"}, reason)
	} else {
		reason = s.decide(stmts)
	}
	s.countOps(reason, 1)
	if reason != "" {
		s.expect(expectation{kind: expQuery, deny: reason})
		return s.send(&pgproto3.Query{String: refusal})
	}
	// A function called by number may be anything, set_config included:
	// nothing pipelined after it goes on before its answer.
	e := expectation{kind: expQuery, answered: make(chan struct{})}
	if s.c.Recording() {
		e.seqs, e.sent = slices.Clone(s.seqs), sinceStart()
	}
	s.expect(e)
	if err := s.send(m); err != nil {
		return err
	}
	return s.awaitAnswer(e.answered)
}

// settingName reports whether b is a plain setting name: letters,
// digits, _ and . (a custom setting's prefix), at most NAMEDATALEN-1
// bytes.
func settingName(b []byte) bool {
	if len(b) == 0 || len(b) > 63 || b[0] >= '0' && b[0] <= '9' {
		return false
	}
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// callByNumber classifies the protocol's function call as the statement
// calling the function by its name would be: nextval is an update,
// pg_notify a notification, set_config('role', ...) a role change, a
// function of the database's own runs its code. Every such call is the
// function operation too. A function corral cannot name is refused.
func (s *session) callByNumber(m *pgproto3.FunctionCall) ([]Statement, string) {
	name, err := s.cat.functionName(s.ctx, m.Function)
	if err != nil {
		s.h.Log.Warn("catalog lookup failed; function call refused", "session_id", s.c.SessionID, "err", err)
		return nil, "corral could not read the catalog to name the function called by number"
	}
	if name == "" {
		return nil, fmt.Sprintf("no function has OID %d", m.Function)
	}
	args := ""
	if lastName(name) == "set_config" && len(m.Arguments) == 3 && settingName(m.Arguments[0]) {
		// The setting it changes is what the call is. Anything but a
		// plain name is left out, and set_config() of no name counts
		// as a role change.
		args = "'" + string(m.Arguments[0]) + "', '', false"
	}
	// Through the classifier: a client reading a large object calls the
	// same few functions over and over, and a call parsed anew each time
	// is a cgo call on the data path. (The text is short and corral's
	// own.)
	stmts, err := s.h.classifier.classify(s.ctx, "SELECT "+name+"("+args+")")
	if err != nil || len(stmts) != 1 {
		return nil, fmt.Sprintf("corral could not classify a call of %s", name)
	}
	st := &stmts[0]
	st.Command = "FUNCTION CALL"
	st.normalized = fmt.Sprintf("FUNCTION CALL %s (oid %d)", name, m.Function)
	st.callOID = m.Function
	// What the function does, not the SELECT it was read as.
	// (A copy: the classifier's cache shares the slice.)
	ops := slices.DeleteFunc(slices.Clone(st.Ops), func(op string) bool { return op == "select" })
	st.Ops = union(ops, []string{"function"})
	return stmts, ""
}

// --- server to client ---

// head is what the server's next message answers. Entries of a batch the
// server is skipping are dropped on the way, also those queued after the
// error was seen.
func (s *session) head() (expectation, bool) {
	s.qMu.Lock()
	defer s.qMu.Unlock()
	for len(s.q) > 0 && s.skipping && s.q[0].batch == s.failed && s.q[0].kind != expSync {
		if s.q[0].kind == expParse && s.q[0].name != "" && s.q[0].rec != nil && !s.q[0].swallow {
			// Skipped: the server never created it. (A skipped Parse of
			// the unnamed statement keeps its record: the chain in it
			// holds what the server kept.)
			s.unmade(s.q[0].name, s.q[0].rec)
		}
		if s.q[0].answered != nil {
			close(s.q[0].answered) // skipped: the server will not run it
		}
		s.dropHead()
	}
	if len(s.q) == 0 {
		return expectation{}, false
	}
	return s.q[0], true
}

func (s *session) pop() {
	s.qMu.Lock()
	if len(s.q) > 0 {
		if s.q[0].kind == expSync && s.skipping && s.q[0].batch == s.failed {
			s.skipping = false
		}
		s.dropHead()
	}
	s.qMu.Unlock()
}

// keptQueue is the most entries an emptied queue keeps its array for: what
// a driver's pipeline needs, not a burst's worth.
const keptQueue = 16

// dropHead takes the head off the queue (qMu held).
func (s *session) dropHead() {
	s.q[0] = expectation{} // nothing it points to is kept alive
	s.q = s.q[1:]
	if len(s.q) == 0 {
		s.q = s.qAll
		if cap(s.qAll) > keptQueue {
			s.q, s.qAll = nil, nil
		}
	}
}

// skipBatch notes that the server skips the rest of batch b, up to its Sync.
// What the client side waits for in it, other than the Sync, has its
// answer now: nothing more will come.
func (s *session) skipBatch(b uint64) {
	s.qMu.Lock()
	s.failed, s.skipping = b, true
	for i := range s.q {
		if e := &s.q[i]; e.batch == b && e.kind != expSync && e.answered != nil {
			close(e.answered)
			e.answered = nil
		}
	}
	s.qMu.Unlock()
}

// maxInFlight bounds the requests a session tracks while the server has
// not answered them: drivers pipeline hundreds, not this many.
const maxInFlight = 1 << 18

// answerHead tells the client side that the expectation at the head of
// the queue has its answer, once.
func (s *session) answerHead() {
	s.qMu.Lock()
	if len(s.q) > 0 && s.q[0].answered != nil {
		close(s.q[0].answered)
		s.q[0].answered = nil
	}
	s.qMu.Unlock()
}

func (s *session) toClient(m pgproto3.BackendMessage) error {
	s.cliMu.Lock()
	defer s.cliMu.Unlock()
	b, err := m.Encode(s.cliW.AvailableBuffer())
	if err != nil {
		return err
	}
	_, err = s.cliW.Write(b)
	return err
}

func (s *session) fromServer() error {
	for {
		msg, err := s.fe.Receive()
		if err != nil {
			s.tooLong(err, "the server sent a message of %d bytes; corral reads at most %d (a value this long cannot be masked or recorded): the session is ended")
			return err
		}
		h, ok := s.head()
		forward := true
		switch m := msg.(type) {
		case *pgproto3.ParseComplete, *pgproto3.BindComplete, *pgproto3.CloseComplete:
			forward = !h.swallow
			if _, closed := m.(*pgproto3.CloseComplete); closed && ok && h.closesStmt {
				// Only what the Close closed: a Parse of the name pipelined
				// behind it made a record the server holds.
				s.closedStmt(h.name, h.closeAt)
			}
			if _, parsed := m.(*pgproto3.ParseComplete); parsed && ok && h.rec != nil && !h.closesStmt {
				h.rec.prev.Store(nil) // the server holds this statement now
			}
			if _, bound := m.(*pgproto3.BindComplete); bound && ok && h.renew != nil {
				h.renew.Store(true) // the name holds a portal made now
			}
			if _, bound := m.(*pgproto3.BindComplete); bound && ok && h.confirms != nil {
				h.confirms.Store(true)
			}
			s.pop()
		case *pgproto3.ParameterDescription:
			forward = !h.swallow
		case *pgproto3.RowDescription:
			p, err := s.plan(m, h.masks, h.withhold)
			if err != nil {
				return s.abort(err)
			}
			switch h.kind {
			case expDescribePortal:
				if h.swallow || h.masks != nil {
					s.execPlan, s.execPlanOK = p, true
				}
				forward = !h.swallow
				s.pop()
			case expDescribeStmt:
				s.pop()
			default:
				s.query, s.queryDesc = p, true
			}
			if len(h.seqs) > 0 && !h.swallow || h.kind == expDescribePortal && (h.swallow || h.masks != nil) {
				s.res.cols = maskedColumns(p, m)
			}
		case *pgproto3.NoData:
			forward = !h.swallow
			if h.kind == expDescribePortal && (h.swallow || h.masks != nil) {
				// No rows to plan for: rows after all would find none.
				s.execPlan, s.execPlanOK = nil, false
			}
			s.pop()
		case *pgproto3.DataRow:
			// Rows are masked by the plan of the result they belong to.
			// Rows corral cannot place end the session: it never guesses.
			var p *plan
			switch {
			case !ok:
				return s.abort(errors.New("result row with no statement to answer"))
			case h.kind == expExecute && h.masks != nil:
				if !s.execPlanOK {
					return s.abort(errors.New("result row of an undescribed portal"))
				}
				p = s.execPlan
			case h.kind == expExecute:
			case h.kind == expQuery && h.masks != nil:
				if !s.queryDesc {
					return s.abort(errors.New("result row before its description"))
				}
				p = s.query
			case h.kind == expQuery:
			default:
				return s.abort(fmt.Errorf("result row while the server owes a different answer (%d)", h.kind))
			}
			if p != nil {
				if n := s.apply(p, m); n > 0 {
					s.res.masked += uint64(n)
					s.c.Metrics().Masked(n)
				}
			}
			if len(h.seqs) > 0 {
				s.res.rows++
				for _, v := range m.Values {
					s.res.bytes += uint64(len(v))
				}
			}
		case *pgproto3.CommandComplete, *pgproto3.EmptyQueryResponse, *pgproto3.PortalSuspended:
			s.copyIn.Store(false)
			if cc, isCC := m.(*pgproto3.CommandComplete); isCC && ok && h.kind == expQuery && string(cc.CommandTag) == "DECLARE CURSOR" {
				// The query's DECLAREs complete in order, and an error
				// ends the query: this one is its s.declared-th.
				if s.declared < len(h.declares) && h.declares[s.declared] != nil {
					h.declares[s.declared].Store(true)
				}
				s.declared++
			}
			if len(h.seqs) > 0 {
				tag := "EMPTY"
				switch m := m.(type) {
				case *pgproto3.CommandComplete:
					tag = string(m.CommandTag)
				case *pgproto3.PortalSuspended:
					tag = "SUSPENDED"
				}
				s.recordResult(h, tag, "", "")
			}
			if h.kind == expExecute {
				s.execPlan, s.execPlanOK = nil, false
				s.answerHead()
				s.pop()
			} else {
				s.query, s.queryDesc = nil, false
			}
		case *pgproto3.CopyInResponse:
			if !ok || h.answered == nil {
				// Every statement that may start a copy is awaited; a copy
				// nobody waits for means corral has lost track of what the
				// server runs.
				return s.abort(errors.New("the server started a copy corral did not expect"))
			}
			s.copyIn.Store(true)
			s.answerHead()
		case *pgproto3.ErrorResponse:
			s.copyIn.Store(false)
			if h.deny != "" {
				// The server's complaint about corral's refusal: say why.
				*m = pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: "42501", Message: "corral: " + h.deny}
			}
			s.execPlan, s.execPlanOK = nil, false
			s.query, s.queryDesc = nil, false
			if ok && h.kind == expParse && h.deny == "" && !h.swallow {
				// The server did not create it.
				if h.name != "" && h.rec != nil {
					s.unmade(h.name, h.rec)
				} else {
					s.dropStmt(h.name, h.rec)
				}
			}
			if ok && h.kind != expQuery {
				s.skipBatch(h.batch)
			}
			if h.deny == "" && h.masks != nil {
				// Whatever the statement names, code it never shows may
				// have read masked values for the server to echo: a rule
				// or a trigger, a row security policy, a WITH HOLD cursor
				// run at COMMIT. An error's text is kept only when it
				// speaks of the statement (see scrubMessage).
				scrubMessage(h.masks, s.key, true, m)
			} else if mk := s.maskedNow.Load(); h.deny == "" && mk != nil {
				scrubMessage(mk, s.key, true, m) // raised at Sync or Close: by the database's own code
			}
			if h.deny == "" && len(h.seqs) > 0 {
				s.recordResult(h, "", m.Code, unquote(m.Message))
			}
		case *pgproto3.NoticeResponse:
			if h.masks != nil {
				scrubMessage(h.masks, s.key, h.withhold, (*pgproto3.ErrorResponse)(m))
			} else if mk := s.maskedNow.Load(); mk != nil {
				scrubMessage(mk, s.key, true, (*pgproto3.ErrorResponse)(m))
			}
		case *pgproto3.FunctionCallResponse:
			// A fast-path call's result (loread of a large object) is a
			// value no table vouches for: detectors read it, and what
			// they find withholds it.
			if mk := s.maskedNow.Load(); mk != nil && len(mk.detect) > 0 && m.Result != nil && detected(m.Result, true, 0, mk.detect) {
				m.Result = nil
			}
		case *pgproto3.NotificationResponse:
			if mk := s.maskedNow.Load(); mk != nil {
				scrubNotification(mk, s.key, m)
			}
		case *pgproto3.ReadyForQuery:
			s.declared = 0
			if ok && m.TxStatus == 'I' && h.ready+1 > s.idleThrough.Load() {
				s.idleThrough.Store(h.ready + 1) // the transaction's portals are gone
			}
			if ok && h.catalogSeq > s.catalogSeen.Load() && m.TxStatus == 'I' {
				// Committed (or rolled back): the catalog connection
				// sees what the DDL did only now.
				s.cat.expire()
				s.catalogSeen.Store(h.catalogSeq)
			}
			if ok && h.codeSeq > s.codeSeen.Load() && m.TxStatus == 'I' {
				s.codeSeen.Store(h.codeSeq)
			}
			s.answerHead()
			s.pop()
			s.query, s.queryDesc = nil, false
			s.res = result{}
		case *pgproto3.ParameterStatus:
			if !safeSyntax(m.Name, m.Value) {
				// However it happened, statements would now be read
				// differently by the server and by corral: stop here.
				return s.abort(fmt.Errorf("server switched %s to %s", m.Name, m.Value))
			}
			if mk := s.maskedNow.Load(); mk != nil && len(mk.detect) > 0 {
				// A setting the workload set from data it read
				// (application_name) is reported back as it is.
				if out, changed := scrub([]byte(m.Value), mk.detect, s.key); changed {
					m.Value = string(out)
				}
			}
		}
		if forward {
			if err := s.toClient(msg); err != nil {
				return err
			}
		}
	}
}

// raisedByCode reports whether the database's own code wrote a message:
// PL/pgSQL's RAISE and ASSERT, the procedural languages' calls for one,
// and a remote server's relayed through dblink or postgres_fdw, which
// may set any SQLSTATE, text and name fields. The server names the
// routine and source file that reported it; its own messages name others
// (DROP TABLE IF EXISTS's notice, 00000, is the server's). A message that
// names neither (a pooler's own) is taken as raised when its SQLSTATE is
// PL/pgSQL's default for RAISE, P0001 or 00000.
func raisedByCode(m *pgproto3.ErrorResponse) bool {
	if m.File == "" && m.Routine == "" {
		return m.Code == "P0001" || m.Code == "00000"
	}
	switch m.Routine {
	case "exec_stmt_raise", "exec_stmt_assert":
		return true
	}
	switch m.File {
	case "pl_exec.c", "plpy_elog.c", "plpy_plpymodule.c", "plperl.c", "pltcl.c", "dblink.c", "connection.c":
		return true
	}
	return strings.HasPrefix(m.File, "plv8")
}

// unquote hides what PostgreSQL quotes in a message: everything from the
// first double quote to the last, or to the end when there is only one.
// PostgreSQL does not escape quotes inside the values it quotes, so a
// value holding one cannot be told from two values; taking the widest span
// hides the value whatever it holds, at the price of the names between.
func unquote(msg string) string {
	i := strings.IndexByte(msg, '"')
	if i < 0 {
		return msg
	}
	j := strings.LastIndexByte(msg, '"')
	if j == i {
		return msg[:i] + `"****"`
	}
	return msg[:i] + `"****"` + msg[j+1:]
}

// scrubMessage keeps masked data out of error and notice texts, which quote
// values ("invalid input syntax for type integer: \"ada@example.com\"").
// With column masks in force every quoted value is hidden, with the parts
// that quote rows, input and inner queries; detectors run over the rest.
// Two kinds lose their whole text (the SQLSTATE stays, and the name
// fields of the first): withheld messages (every error, and the notices
// of a statement that reads masked data) unless about the statement,
// since evaluating it may go wrong over masked values — functions echo
// their input unquoted (make_date, chr, convert_from), a filter, rule or
// policy may compute over masked columns — and what the database's own
// code raises (a trigger's RAISE NOTICE '%', OLD.email), whatever the
// SQLSTATE it chose, with its name fields too (RAISE ... USING COLUMN =
// OLD.email).
func scrubMessage(mk *masks, key []byte, withhold bool, m *pgproto3.ErrorResponse) {
	if len(mk.columns) > 0 {
		m.Detail, m.Where, m.InternalQuery, m.InternalPosition = "", "", "", 0
		raised := raisedByCode(m)
		if raised {
			m.SchemaName, m.TableName, m.ColumnName, m.DataTypeName, m.ConstraintName = "", "", "", "", ""
		}
		withheld := raised || withhold && (!aboutStatement(m.Code) || fromData(m))
		// A position need not point into the client's SQL: a type name
		// parsed as the statement runs (a cast to regtype) reports one
		// within that text, and text built from a masked value places
		// it by the value (repeat(' ', ascii(email)) || '('). corral
		// parsed the client's SQL before sending it, so the server's
		// syntax errors are rarely about it.
		m.Position = 0
		if withheld {
			m.Message = fmt.Sprintf("corral: the server's message is withheld while masks apply (SQLSTATE %s)", m.Code)
			m.Hint = ""
			return
		}
	}
	// DETAIL, CONTEXT and the inner query quote values (a failing row,
	// an input that did not parse): with column masks they are gone
	// above; detectors read them like the message.
	for i, p := range []*string{&m.Message, &m.Hint, &m.Detail, &m.Where, &m.InternalQuery} {
		if *p == "" {
			continue
		}
		if len(mk.columns) > 0 && i < 2 {
			*p = unquote(*p)
		}
		if len(mk.detect) > 0 {
			if out, changed := scrub([]byte(*p), mk.detect, key); changed {
				*p = string(out)
				if out == nil {
					*p = withheldText
				}
			}
		}
	}
}

// scrubNotification masks a NOTIFY payload. Any session, or a trigger of
// the database's own, may have sent it, out of reach of the checks that
// refuse pg_notify of a masked column in this session: while column masks
// apply the payload is withheld (the channel still arrives, which is what
// most listeners wait for), and detectors scrub it otherwise.
func scrubNotification(mk *masks, key []byte, m *pgproto3.NotificationResponse) {
	if len(mk.columns) > 0 {
		if m.Payload != "" {
			m.Payload = "corral: withheld while masks apply"
		}
		return
	}
	if len(mk.detect) > 0 {
		if out, changed := scrub([]byte(m.Payload), mk.detect, key); changed {
			m.Payload = string(out)
			if out == nil {
				m.Payload = withheldText
			}
		}
	}
}

// fromData reports whether an error of a class aboutStatement counts may
// be about values the statement read: a name computed from them (a cast
// to regclass, regproc or regconfig says "improper relation name (too many
// dotted names): ada@example.com.a.b", or "cross-database references are
// not implemented: ...", unquoted). Errors of syntax and analysis point
// into the statement (Position), and permission errors name objects; any
// other of those classes is raised while rows are read.
func fromData(m *pgproto3.ErrorResponse) bool {
	if len(m.Code) < 2 || m.Position > 0 || m.Code == "42501" {
		return false
	}
	// The echo follows a colon; a message without one says nothing
	// computed ("cached plan must not change result type", which clients
	// match to prepare again).
	return (m.Code[:2] == "42" || m.Code[:2] == "0A") && strings.Contains(m.Message, ": ")
}

// aboutStatement reports SQLSTATE classes that speak of the statement, the
// session or the server, never of the data read: syntax and access (42,
// but for undefined functions and objects),
// unsupported features (0A), transaction state (25, 40), resources (53),
// operator intervention (57), connection (08), unknown names (3D, 3F, 26,
// 34).
func aboutStatement(code string) bool {
	if len(code) < 2 || code == "42883" || code == "42704" {
		// Undefined function or object: also what a cast to regoper,
		// regproc or regtype says of the text it was given, unquoted.
		return false
	}
	switch code[:2] {
	case "42", "0A", "25", "40", "53", "57", "08", "3D", "3F", "26", "34":
		return true
	}
	return false
}

// abort ends a session whose results corral cannot vouch for.
func (s *session) abort(err error) error {
	s.h.Log.Error("session ended: corral cannot vouch for what the server returns", "session_id", s.c.SessionID, "err", err)
	s.fatal("XX000", "corral could not mask this result, or lost track of the session; the session is ended")
	return err
}

// tooLong tells the client, when err is a message longer than corral
// reads, why its session ends: format takes the message's length and
// the bound. (Apart from the receive loops: the error's variable would
// be allocated for every message.)
func (s *session) tooLong(err error, format string) {
	var big *pgproto3.ExceededMaxBodyLenErr
	if errors.As(err, &big) {
		s.h.Log.Warn("session ended: a message longer than corral reads", "session_id", s.c.SessionID, "bytes", big.ActualBodyLen)
		s.fatal("54000", "corral: "+fmt.Sprintf(format, big.ActualBodyLen, maxMessage))
	}
}

// fatal tells the client why its session ends, at once.
func (s *session) fatal(code, message string) {
	s.toClient(&pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: code, Message: message})
	s.cliMu.Lock()
	s.cliW.Flush()
	s.cliMu.Unlock()
}

// plan works out, column by column, what to mask in a result. A session
// mostly runs the same few statements: the plan of a result shape (the
// columns' tables, numbers, types and formats) is kept for as long as the
// catalog answers it was made from are trusted.
func (s *session) plan(rd *pgproto3.RowDescription, mk *masks, withhold bool) (*plan, error) {
	if mk == nil {
		return nil, nil
	}
	key := s.planKey[:0]
	if withhold {
		key = append(key, 1)
	}
	uncertain := s.uncertain() // read once: the plan and its key agree
	if uncertain {
		key = append(key, 2) // views withheld (makePlan)
	}
	for _, f := range rd.Fields {
		key = binary.BigEndian.AppendUint32(key, f.TableOID)
		key = binary.BigEndian.AppendUint16(key, f.TableAttributeNumber)
		key = binary.BigEndian.AppendUint32(key, f.DataTypeOID)
		key = binary.BigEndian.AppendUint16(key, uint16(f.Format))
	}
	s.planKey = key
	gen := s.cat.gen.Load()
	if c, ok := s.plans[string(key)]; ok && c.masks == mk && c.gen == gen && time.Now().Before(c.until) {
		return c.plan, nil
	}
	p, until, err := s.makePlan(rd, mk, withhold, uncertain)
	if err != nil {
		return nil, err
	}
	if s.plans == nil || len(s.plans) >= maxPlans {
		s.plans = map[string]cachedPlan{}
	}
	s.plans[string(key)] = cachedPlan{plan: p, masks: mk, until: until, gen: gen}
	return p, nil
}

// maxPlans bounds a session's plan cache.
const maxPlans = 64

type cachedPlan struct {
	plan  *plan // nil: nothing to mask
	masks *masks
	until time.Time
	gen   uint64 // the catalog cache's generation it was made from
}

// makePlan makes a plan, and says until when it holds: the catalog's
// trust in what it said of the relations involved, and its next check of
// them (the check runs when a plan is made).
func (s *session) makePlan(rd *pgproto3.RowDescription, mk *masks, withhold, uncertain bool) (*plan, time.Time, error) {
	until := time.Now().Add(catalogTTL)
	p := &plan{
		masks:   mk,
		methods: make([]string, len(rd.Fields)),
		text:    make([]bool, len(rd.Fields)),
		scan:    make([]bool, len(rd.Fields)),
		inPlace: make([]bool, len(rd.Fields)),
		types:   make([]uint32, len(rd.Fields)),
		binary:  make([]bool, len(rd.Fields)),
		detect:  len(mk.detect) > 0,
	}
	var oids []uint32
	for _, f := range rd.Fields {
		if f.TableOID != 0 {
			oids = append(oids, f.TableOID)
		}
	}
	var rels map[uint32]*relation
	if len(oids) > 0 && len(mk.columns) > 0 {
		var err error
		if rels, err = s.cat.relations(s.ctx, oids); err != nil {
			return nil, until, err
		}
		if t := s.cat.trustedUntil(); t.Before(until) {
			until = t
		}
		for _, r := range rels {
			if t := r.fetched.Add(catalogTTL); t.Before(until) {
				until = t
			}
		}
	}
	any := p.detect
	// A view's method is the same for each of its columns, and a table
	// column's for each time the result has it: worked out once each, a
	// result of 1,664 columns of a view over a table of 999 partitions
	// took seconds.
	type column struct {
		rel uint32
		att int16
	}
	viewMethods, columnMethods := map[uint32]string{}, map[column]string{}
	// maskedKin are a table's ancestors and descendants with masks: of a
	// thousand partitions, most often none.
	maskedKin := map[uint32][]string{}
	for i, f := range rd.Fields {
		p.binary[i] = f.Format == 1
		p.text[i] = textTypes[f.DataTypeOID]
		// Any type may print text (a row, bytea in escape format, a
		// tsvector, pg_stats' anyarray), but only text and the textual
		// types take a mask inside their values without breaking the
		// client's parsing: for other types a finding withholds the value.
		p.scan[i] = !plainTypes[f.DataTypeOID]
		p.inPlace[i] = p.text[i] || textualTypes[f.DataTypeOID] && !p.binary[i]
		p.types[i] = f.DataTypeOID
		if len(mk.columns) == 0 {
			continue
		}
		rel := rels[f.TableOID]
		switch {
		case f.TableOID == 0:
			if withhold {
				p.methods[i] = "null" // computed from data no table vouches for
			}
		case rel == nil:
			p.methods[i] = "null" // a relation the catalog does not know
		case uncertain && s.window.relation(rel.name):
			// Changed out of the catalog's sight: a rule may have made
			// the table a view, which keeps its OID.
			p.methods[i] = "null"
		case rel.kind == 'v' || rel.kind == 'm':
			// A view does not say which of its columns come from where:
			// if it reads a masked column, all of its columns are masked;
			// if it calls a function of the database's own, which may
			// read anything, or reads statistics or other sessions'
			// statements, all are withheld; so are they while the
			// session's own catalog changes are out of the catalog's
			// sight (it may have made the view anew).
			method, done := viewMethods[f.TableOID]
			if !done {
				if rel.opaque || uncertain {
					method = "null"
				}
				for _, dep := range rel.deps {
					parts := strings.SplitN(dep, ".", 3)
					if parts[2] == "*" {
						method = stricter(method, mk.tableMethod(parts[0], parts[1]))
					} else {
						method = stricter(method, mk.method(parts[0], parts[1], parts[2]))
					}
				}
				viewMethods[f.TableOID] = method
			}
			p.methods[i] = method
		default:
			col, known := rel.columns[int16(f.TableAttributeNumber)]
			if !known && int16(f.TableAttributeNumber) > 0 {
				// A column the catalog's connection cannot see (added in
				// the client's own open transaction, or since the
				// answer): no name to mask it by, so withheld.
				p.methods[i] = "null"
				break
			}
			key := column{f.TableOID, int16(f.TableAttributeNumber)}
			method, done := columnMethods[key]
			if !done {
				method = mk.method(rel.schema, rel.name, col)
				// A parent's rows include its children's (inheritance,
				// partitions): a mask on either side holds for both.
				kin, listed := maskedKin[f.TableOID]
				if !listed {
					for _, list := range [][]string{rel.ancestors, rel.descendants} {
						for _, a := range list {
							if schema, table, _ := strings.Cut(a, "."); mk.tableMethod(schema, table) != "" {
								kin = append(kin, a)
							}
						}
					}
					maskedKin[f.TableOID] = kin
				}
				for _, a := range kin {
					schema, table, _ := strings.Cut(a, ".")
					method = stricter(method, mk.method(schema, table, col))
				}
				columnMethods[key] = method
			}
			p.methods[i] = method
		}
		if p.methods[i] != "" {
			any = true
		}
	}
	if !any {
		return nil, until, nil
	}
	return p, until, nil
}

// apply masks one row and returns how many values it changed.
func (s *session) apply(p *plan, row *pgproto3.DataRow) (n int) {
	for i, v := range row.Values {
		if i >= len(p.methods) || v == nil {
			continue
		}
		switch method := p.methods[i]; {
		case method != "":
			if p.binary[i] || !p.text[i] {
				// No string can stand in for a binary value or a
				// non-text type: the value is withheld.
				row.Values[i] = nil
			} else {
				row.Values[i] = maskValue(method, v, s.key)
			}
			n++
		case p.detect && p.scan[i] && !p.inPlace[i]:
			// A binary array or jsonb, a row, ... cannot be rewritten in
			// place: the value is withheld.
			if detected(v, p.binary[i], p.types[i], p.masks.detect) {
				row.Values[i] = nil
				n++
			}
		case p.detect && p.scan[i]:
			if out, changed := scrub(v, p.masks.detect, s.key); changed {
				row.Values[i] = out
				n++
			}
		}
	}
	return n
}

// maskedColumns names the columns of a result that a plan masks by
// method (detectors apply to every text column and are not listed).
func maskedColumns(p *plan, rd *pgproto3.RowDescription) []string {
	if p == nil {
		return nil
	}
	var cols []string
	for i, m := range p.methods {
		if m != "" && i < len(rd.Fields) {
			cols = append(cols, string(rd.Fields[i].Name))
		}
	}
	return cols
}

// recordResult records the response to the statement answering now, and
// starts counting the next one's.
func (s *session) recordResult(h expectation, tag, code, message string) {
	i := 0
	if h.kind == expQuery {
		i = s.res.idx
		s.res.idx++
	}
	if i < len(h.seqs) {
		cols := s.res.cols
		if h.kind == expExecute && h.masks == nil {
			cols = nil // described for another portal, if at all
		}
		err := s.c.Result(recorder.Result{
			Of: h.seqs[i], Command: tag, Rows: s.res.rows, Bytes: s.res.bytes,
			MaskedColumns: cols, MaskedValues: s.res.masked,
			DurationMS: float64((sinceStart() - h.sent).Microseconds()) / 1000,
			Code:       code, Message: message,
		})
		if err != nil {
			// Strict recording failed: the recorder cuts the session.
			s.h.Log.Debug("result not recorded", "session_id", s.c.SessionID, "err", err)
		}
	}
	idx := s.res.idx
	s.res = result{idx: idx}
}
