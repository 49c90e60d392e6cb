"use strict";
// The login page: where to go after signing in (?next=), and why we are here again.
document.addEventListener("DOMContentLoaded", () => {
  const params = new URLSearchParams(location.search);
  const next = params.get("next");
  if (next && next.startsWith("/") && !next.startsWith("//")) document.getElementById("next").value = next;
  const message = document.getElementById("message");
  if (params.get("error") === "wrong_key") message.textContent = "That is not the admin key of this server.";
  else if (params.get("signed_out")) { message.className = "ok"; message.textContent = "Signed out."; }
});
