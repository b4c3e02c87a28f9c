// Package console serves Portcullis's admin console: a dependency-free
// page (HTML, one JavaScript module, one style sheet, embedded in the
// binary) mounted at /console/ on the admin listener. The page talks only
// to the admin API, with an access token it obtains from Portcullis
// itself: an administrator (a user with role admin) logs in through the
// first-party authorization challenge endpoint of the public listener
// (password, then a TOTP code when the account has a second factor), as
// the public client the server registers for the console (ClientID), and
// redeems the code with PKCE. Tokens live in the page's memory only, never
// in localStorage or cookies: a reload logs out.
//
// Every answer carries a Content-Security-Policy that allows scripts,
// styles and connections from the page's own origin only, plus
// connections to the issuer's origin (the token and challenge endpoints),
// and forbids framing; the page has no inline script or style.
package console
