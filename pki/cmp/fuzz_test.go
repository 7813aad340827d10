package cmp

import (
	"crypto/rand"
	"testing"

	"github.com/pkiagent/pkiagent/internal/testpki"
)

// responseSeeds are real answers of the test responder: ip under PBM, a
// signed cp, waiting, pollRep, an error and pkiConf.
func responseSeeds(tb testing.TB) [][]byte {
	r := newResponder(tb)
	key := testpki.Must(testpki.NewKey(testpki.ECDSAP256))
	var seeds [][]byte
	for _, prot := range []Protection{
		PBM{Reference: "ref", Secret: r.secret},
		Signature{Cert: r.signer.Cert, Key: r.signer.Key},
	} {
		req := &Request{Kind: IR, Key: key, Subject: sr, DNSNames: []string{"a.example"}, Protection: prot}
		p, err := newProtector(prot)
		if err != nil {
			tb.Fatal(err)
		}
		t, err := (&Client{}).newTransaction(req, p)
		if err != nil {
			tb.Fatal(err)
		}
		content, err := certReqMessages(req)
		if err != nil {
			tb.Fatal(err)
		}
		nonce := make([]byte, 16)
		rand.Read(nonce)
		m := &message{bodyType: bodyIR, body: content, header: header{pvno: 2, sender: t.sender,
			transactionID: t.tid, senderNonce: nonce, protectionAlg: p.algDER, senderKID: t.senderKID}}
		seeds = append(seeds,
			r.answer(m),
			r.respond(m, bodyIP, certRepBody(nil, nil, statusWaiting, -1)),
			r.respond(m, bodyPollRep, pollRepBody(5)),
			r.respond(m, bodyError, errorMsgBody(statusRejection, 9, "bad pop")),
			r.respond(m, bodyPKIConf, []byte{0x05, 0x00}))
	}
	return seeds
}

// FuzzParseResponse feeds the response parser and the protection check
// arbitrary bytes: they must never panic or hang.
func FuzzParseResponse(f *testing.F) {
	r := newResponder(f)
	for _, s := range responseSeeds(f) {
		f.Add(s)
	}
	prot, err := newProtector(PBM{Reference: "ref", Secret: r.secret})
	if err != nil {
		f.Fatal(err)
	}
	c := &Client{Trusted: testpki.Pool(r.ca)}
	f.Fuzz(func(t *testing.T, der []byte) {
		m, err := parseMessage(der)
		if err != nil {
			return
		}
		tr := &transaction{c: c, prot: prot, req: &Request{Kind: IR}}
		if perr := tr.verify(m); perr != nil {
			tr.unverified(m, perr)
		}
		switch m.bodyType {
		case bodyIP, bodyCP, bodyKUP:
			if rep, err := parseCertRep(m.body); err == nil && len(rep.responses) == 0 {
				t.Fatal("a CertRepMessage without responses parsed")
			}
		case bodyPollRep:
			parsePollRep(m.body)
		case bodyError:
			errorBody(m, bodyIR)
		case bodyPKIConf:
			parsePKIConf(m.body)
		}
	})
}
