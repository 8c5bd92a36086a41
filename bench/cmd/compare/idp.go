package main

import (
	"strings"

	"github.com/oauth2-proxy/mockoidc"
)

// mockIDP is the OpenID provider behind mcpgw's authorization server in
// scenario s1o: mockoidc (github.com/oauth2-proxy/mockoidc), an OIDC
// server in this process that logs in its queued user without a form. It
// lives here, not in package bench, so that the mcpgw-bench binary does
// not carry it.
type mockIDP struct{ m *mockoidc.MockOIDC }

func startMockIDP() (*mockIDP, error) {
	m, err := mockoidc.Run()
	if err != nil {
		return nil, err
	}
	return &mockIDP{m: m}, nil
}

func (p *mockIDP) Issuer() string { return p.m.Issuer() }

func (p *mockIDP) EnvFile() string {
	c := p.m.Config()
	return strings.Join([]string{
		"OIDC_CLIENT_ID=" + c.ClientID,
		"OIDC_CLIENT_SECRET=" + c.ClientSecret,
		"OIDC_AUTH_URL=" + p.m.AuthorizationEndpoint(),
		"OIDC_TOKEN_URL=" + p.m.TokenEndpoint(),
		"OIDC_USER_URL=" + p.m.UserinfoEndpoint(),
		"OIDC_SCOPES=openid email profile groups",
	}, "\n") + "\n"
}

func (p *mockIDP) NextUser(email string, groups []string) {
	p.m.QueueUser(&mockoidc.MockUser{Subject: email, Email: email, EmailVerified: true, PreferredUsername: email, Groups: groups})
}

func (p *mockIDP) Close() error { return p.m.Shutdown() }
