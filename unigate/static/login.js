// Login and 403 pages of the unigate dashboard: store the admin key in a cookie, or forget it.
// The cookie is SameSite=Strict and not HttpOnly: the dashboard's script reads it and sends it
// as a Bearer header to the JSON APIs (which never accept the cookie themselves).
"use strict";
(function () {
  var COOKIE = "unigate_admin";

  function setCookie(value, maxAge) {
    var parts = [COOKIE + "=" + value, "Path=/", "SameSite=Strict"];
    if (maxAge !== null) parts.push("Max-Age=" + maxAge);
    if (location.protocol === "https:") parts.push("Secure");
    document.cookie = parts.join("; ");
  }

  function hasCookie() {
    return document.cookie.split(";").some(function (c) {
      return c.trim().indexOf(COOKIE + "=") === 0;
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("login");
    var error = document.getElementById("login-error");
    if (form && error) {
      if (hasCookie()) {
        // We are on the login page although a key is stored: the gateway refused it.
        error.textContent = "The saved key was not accepted. Enter an admin key.";
        error.hidden = false;
        setCookie("", 0);
      }
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        var key = document.getElementById("key").value.trim();
        if (!key) {
          error.textContent = "Enter a key.";
          error.hidden = false;
          return;
        }
        setCookie(encodeURIComponent(key), null);
        location.reload();
      });
    }
    var signout = document.getElementById("signout");
    if (signout) {
      signout.addEventListener("click", function () {
        setCookie("", 0);
        location.reload();
      });
    }
  });
})();
