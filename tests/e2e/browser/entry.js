// Bundled by phone.mjs into jssip.bundle.js for the page.
window.JsSIP = require('jssip');
