package config

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// NATSTLS is TLS to NATS with a private CA and a client certificate, read
// from NATS_CA, NATS_CERT and NATS_KEY (the nats CLI's names), shared by
// both services. All three are optional; NATS_CERT and NATS_KEY go together.
type NATSTLS struct {
	// CA is a PEM file of the certificates that sign the servers'.
	CA string `env:"NATS_CA"`
	// Cert and Key are the client's PEM certificate and private key.
	Cert string `env:"NATS_CERT"`
	Key  string `env:"NATS_KEY"`
}

// Validate reads the files and reports each problem against the variable
// that names the bad file.
func (t *NATSTLS) Validate(p *Problems) {
	CheckTLSFiles(p, "NATS_CA", t.CA, "NATS_CERT", t.Cert, "NATS_KEY", t.Key)
}

// CheckTLSFiles validates a CA bundle and a client certificate/key pair
// (each optional, the pair together), naming caVar, certVar or keyVar in
// each problem. Both services use it for NATS, the publisher also for the
// leaf-node connection (PUBLISHER_HUB_CA, …).
func CheckTLSFiles(p *Problems, caVar, ca, certVar, cert, keyVar, key string) {
	if ca != "" {
		if b, err := os.ReadFile(ca); err != nil {
			p.Add(caVar, "cannot read CA file: %v", err)
		} else if !x509.NewCertPool().AppendCertsFromPEM(b) {
			p.Add(caVar, "%s holds no PEM certificate", ca)
		}
	}
	switch {
	case cert == "" && key == "":
		return
	case cert == "":
		p.Add(certVar, "must be set together with %s", keyVar)
		return
	case key == "":
		p.Add(keyVar, "must be set together with %s", certVar)
		return
	}
	certOK, keyOK := true, true
	if _, err := os.Stat(cert); err != nil {
		p.Add(certVar, "cannot read certificate file: %v", err)
		certOK = false
	}
	if _, err := os.Stat(key); err != nil {
		p.Add(keyVar, "cannot read key file: %v", err)
		keyOK = false
	}
	if !certOK || !keyOK {
		return
	}
	if _, err := tls.LoadX509KeyPair(cert, key); err != nil {
		// Say which file is wrong where the library lets us tell.
		if _, cerr := tls.LoadX509KeyPair(cert, cert); cerr != nil && !hasPEMCert(cert) {
			p.Add(certVar, "%s is not a PEM certificate: %v", cert, err)
			return
		}
		p.Add(keyVar, "%s is not the private key of %s (%s): %v", key, cert, certVar, err)
	}
}

func hasPEMCert(path string) bool {
	b, err := os.ReadFile(path)
	return err == nil && x509.NewCertPool().AppendCertsFromPEM(b)
}

// Enabled reports whether any TLS setting is given.
func (t NATSTLS) Enabled() bool { return t.CA != "" || t.Cert != "" || t.Key != "" }

// String describes the settings without secrets, for a start-up log line.
func (t NATSTLS) String() string {
	if !t.Enabled() {
		return "none"
	}
	return fmt.Sprintf("ca=%q cert=%q", t.CA, t.Cert)
}
