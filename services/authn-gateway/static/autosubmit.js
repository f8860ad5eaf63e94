// Sends the SAML Response on to the service provider.
document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("saml-response");
  if (form) { form.submit(); }
});
