// Package archtest holds only a test: it checks that every package of the
// module imports only what the layout allows (README, "Architecture").
package archtest
