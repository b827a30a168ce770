//! The hosted pages' words, per language: a message catalogue with English and French,
//! chosen per request by `Accept-Language` ([`Locale::negotiate`]).
//!
//! Templates read a message as `m.<key>`; a `{name}` in it is filled by the `fill` filter
//! (`{{ m.signed_in_as | fill(email=email) }}`), and the whole text is escaped as usual.
//! Every language has every key (a unit test checks it, and that every key a template uses
//! exists). Technical details (an OAuth error's description) stay in English.

mod account;
mod console;

/// Messages of one language (one part of it: the sign-in pages here, the account page
/// and the console in their own files).
type Catalogue = &'static [(&'static str, &'static str)];

const EN: Catalogue = &[
    ("sign_in", "Sign in"),
    ("sign_in_to_continue", "to continue to {client}"),
    ("email", "Email"),
    ("password", "Password"),
    ("new_password", "New password"),
    ("code_from_mail", "Code from the mail"),
    ("forgot_link", "Forgot password?"),
    ("no_account", "No account yet?"),
    ("create_account", "Create an account"),
    ("or_sign_in_with", "Or sign in with"),
    ("other_ways", "Other ways to sign in"),
    ("signup_title", "Create an account"),
    ("signup_button", "Create account"),
    (
        "password_hint",
        "At least 8 characters. A few words strung together are easy to remember and hard to guess.",
    ),
    ("have_account", "Already have an account?"),
    ("check_inbox_title", "Check your inbox"),
    (
        "signup_sent",
        "We sent a message to {email}. Follow its link to confirm your address, then sign in.",
    ),
    ("forgot_title", "Reset your password"),
    (
        "forgot_lead",
        "Enter your account's email address and we will send you a link to choose a new password.",
    ),
    ("send_link", "Send the link"),
    (
        "forgot_sent",
        "If an account exists for {email}, we sent it a link to choose a new password. The link works once and expires in {duration}.",
    ),
    ("back_to_sign_in", "Back to sign in"),
    ("reset_title", "Choose a new password"),
    ("reset_button", "Set the new password"),
    ("reset_done_title", "Password changed"),
    (
        "reset_done",
        "Your password has been changed, and every session of your account has been signed out. Sign in with the new password.",
    ),
    ("link_invalid_title", "This link does not work"),
    (
        "link_invalid",
        "It has expired, has already been used, or a newer one was sent. Ask for a new one.",
    ),
    ("ask_new_link", "Ask for a new link"),
    ("verify_title", "Confirm your email address"),
    (
        "verify_lead",
        "Confirm that this is your address to finish setting up your account.",
    ),
    ("verify_button", "Confirm my address"),
    ("verified_title", "Address confirmed"),
    ("verified", "Thank you: your email address is confirmed."),
    ("confirm_email_title", "Confirm your new address"),
    (
        "confirm_email_lead",
        "Confirm that this new address should be your account's from now on.",
    ),
    ("confirm_email_button", "Confirm the new address"),
    ("email_changed_title", "Address changed"),
    (
        "email_changed",
        "Your account's email address has been changed. Sign in with the new address.",
    ),
    ("signed_in_title", "Signed in"),
    ("signed_in_as", "You are signed in as {email}."),
    ("sign_out", "Sign out"),
    ("sign_out_title", "Sign out?"),
    ("sign_out_lead", "Sign out of {email} on this device?"),
    (
        "sign_out_client",
        "{client} asks to sign you out of {email}.",
    ),
    ("signed_out_title", "Signed out"),
    ("signed_out", "You are signed out."),
    ("cancel", "Cancel"),
    ("continue", "Continue"),
    ("err_credentials", "The email or password is incorrect."),
    (
        "err_too_many",
        "Too many attempts. Wait a little, then try again.",
    ),
    ("err_disabled", "This account is disabled."),
    ("mfa_title", "Second step"),
    (
        "mfa_lead",
        "Enter the 6-digit code from your authenticator app, or one of your recovery codes.",
    ),
    ("mfa_code", "Code"),
    ("mfa_code_help", "A recovery code works only once."),
    ("mfa_verify", "Verify"),
    ("mfa_start_over", "Start over"),
    ("step_up_title", "Confirm it is you"),
    (
        "step_up_lead",
        "This page needs a recent second factor. Enter the 6-digit code from your authenticator app, or one of your recovery codes.",
    ),
    (
        "step_up_password_lead",
        "This page needs a recent sign-in. Enter your password to go on.",
    ),
    (
        "step_up_no_factor",
        "This page needs a second factor, and your account has none yet. Set one up, then come back.",
    ),
    ("step_up_set_up", "Set up a second factor"),
    ("account_title", "Your account"),
    ("passkey_sign_in", "Sign in with a passkey"),
    ("passkey_use", "Use a passkey instead"),
    (
        "err_passkey",
        "That passkey did not work. Try again, or use another way.",
    ),
    (
        "err_passkeys_unavailable",
        "Passkeys are not available on this site.",
    ),
    (
        "err_too_many_passkeys",
        "This account has as many passkeys as it may hold.",
    ),
    ("passkeys_title", "Passkeys"),
    (
        "passkeys_none",
        "No passkey yet. A passkey signs you in with your fingerprint, face or device PIN, without a password.",
    ),
    ("passkey_name", "Name of the new passkey"),
    ("passkey_name_example", "e.g. Work laptop"),
    ("passkey_add", "Add a passkey"),
    ("passkey_remove", "Remove"),
    ("passkey_remove_named", "Remove the passkey {name}"),
    ("factors_title", "Second factor"),
    (
        "totp_on",
        "An authenticator app is set up: signing in asks for a code from it.",
    ),
    (
        "totp_off",
        "No second factor yet. With an authenticator app, a stolen password alone no longer opens your account.",
    ),
    ("codes_left", "Recovery codes left: {n}."),
    ("codes_new", "New recovery codes"),
    ("totp_remove", "Remove the authenticator app"),
    (
        "factors_recent",
        "New codes, and removing a second factor, first ask for one if you have not used one in the last 10 minutes.",
    ),
    ("totp_set_up", "Set up an authenticator app"),
    ("totp_setup_title", "Set up an authenticator app"),
    (
        "totp_setup_lead",
        "Scan the QR code with your authenticator app, or type the key into it. Then enter the 6-digit code it shows.",
    ),
    (
        "totp_qr_label",
        "QR code of the key, for your authenticator app",
    ),
    ("totp_secret_label", "Key:"),
    (
        "totp_open_app",
        "Open in an authenticator app on this device",
    ),
    ("totp_first_code", "Code from the app"),
    ("totp_confirm", "Turn on"),
    ("codes_title", "Your recovery codes"),
    (
        "codes_lead",
        "Keep these codes somewhere safe: each lets you in once if you lose your phone. They are shown only now.",
    ),
    ("codes_done", "I have saved them"),
    ("err_no_second_factor", "Set up an authenticator app first."),
    (
        "err_totp_already_enrolled",
        "An authenticator app is already set up.",
    ),
    (
        "err_code_required",
        "Your account has a second factor: enter a code from it.",
    ),
    (
        "err_invalid_code",
        "That code is wrong or was already used.",
    ),
    (
        "err_mfa_expired",
        "This sign-in expired. Please sign in again.",
    ),
    (
        "err_not_verified",
        "Verify your email address first: follow the link we mailed you.",
    ),
    (
        "err_unavailable",
        "The service is temporarily unavailable. Please try again in a moment.",
    ),
    ("err_failed", "That did not work. Please try again."),
    (
        "err_form",
        "This form expired or did not come from this site. Please try again.",
    ),
    (
        "err_origin",
        "This page was opened at {origin}, but this service's address is {public}. Open {public} instead.",
    ),
    (
        "err_origin_admin",
        "If people reach this service at {origin}, its administrator sets TOLLGATE_PUBLIC_URL to it (or adds it to [http] trusted_origins).",
    ),
    (
        "err_password_too_short",
        "The password is too short: use at least 8 characters.",
    ),
    (
        "err_password_too_long",
        "The password is too long: use at most 1024 characters.",
    ),
    (
        "err_password_too_common",
        "This password is one of the most common ones. Choose another.",
    ),
    (
        "err_password_breached",
        "This password has appeared in a data breach. Choose another.",
    ),
    (
        "err_password_is_email",
        "The password must not be your email address.",
    ),
    (
        "err_invalid_email",
        "Enter an email address like name@example.com.",
    ),
    (
        "err_registration_closed",
        "New accounts are created by an administrator here.",
    ),
    ("consent_title", "Allow {client} access?"),
    ("consent_lead", "Signed in as {email}. {client} asks to:"),
    ("consent_nothing", "know that you are signed in"),
    ("allow", "Allow"),
    ("deny", "Deny"),
    (
        "client_registered_itself",
        "This application registered itself: nobody here has checked who made it.",
    ),
    ("consent_resource", "For use at:"),
    ("device_title", "Connect a device"),
    (
        "device_lead",
        "Type the code your device shows to let it use your account.",
    ),
    ("device_code_label", "Code"),
    (
        "device_code_invalid",
        "That code is not valid or has expired. Check the code on your device, or start again there.",
    ),
    ("device_confirm_title", "Allow {client} on your device?"),
    (
        "device_confirm_lead",
        "Signed in as {email}. The device showing {code} asks, as {client}, to:",
    ),
    (
        "device_fine",
        "Only allow this if you started it on your device and the code matches.",
    ),
    ("device_allowed_title", "Device connected"),
    (
        "device_allowed_text",
        "You can go back to your device; it will continue on its own.",
    ),
    ("device_denied_title", "Device refused"),
    (
        "device_denied_text",
        "The device was not given access to your account.",
    ),
    (
        "consent_fine",
        "You can withdraw this later; the application's access ends with it.",
    ),
    (
        "scope_openid",
        "confirm who you are (an identifier of your account, nothing else)",
    ),
    (
        "scope_profile",
        "see your user name, which is your email address",
    ),
    (
        "scope_email",
        "see your email address and whether it is verified",
    ),
    (
        "scope_offline_access",
        "keep access after you sign out here, until you withdraw it",
    ),
    ("scope_roles", "see the names of your roles"),
    ("scope_other", "act for you with the permission “{scope}”"),
    ("link_title", "Link your {provider} account"),
    (
        "link_lead",
        "An account for {email} already exists. Enter its password to link your {provider} sign-in to it; from then on either way signs you in.",
    ),
    ("link_password", "Password for {email}"),
    ("link_button", "Link accounts"),
    ("error_title", "Something went wrong"),
    ("error_400", "This request cannot be handled"),
    ("error_401", "Sign-in required"),
    ("error_403", "Not allowed"),
    ("error_404", "Page not found"),
    (
        "error_404_text",
        "The address may be mistyped, or the page no longer exists.",
    ),
    ("error_405", "Not allowed here"),
    ("error_408", "This took too long"),
    ("error_429", "Too many requests"),
    ("error_5xx", "The service is unavailable"),
    ("error_code", "Error code"),
    ("home_link", "Go to the start page"),
    ("continuing", "Continuing…"),
    (
        "no_script",
        "Your browser does not run scripts: press the button to continue.",
    ),
    ("sign_in_failed_title", "Sign-in did not complete"),
    ("request_failed_title", "This request cannot continue"),
];

const FR: Catalogue = &[
    ("sign_in", "Se connecter"),
    ("sign_in_to_continue", "pour continuer vers {client}"),
    ("email", "Adresse e-mail"),
    ("password", "Mot de passe"),
    ("new_password", "Nouveau mot de passe"),
    ("code_from_mail", "Code reçu par e-mail"),
    ("forgot_link", "Mot de passe oublié ?"),
    ("no_account", "Pas encore de compte ?"),
    ("create_account", "Créer un compte"),
    ("or_sign_in_with", "Ou se connecter avec"),
    ("other_ways", "Autres façons de se connecter"),
    ("signup_title", "Créer un compte"),
    ("signup_button", "Créer le compte"),
    (
        "password_hint",
        "Au moins 8 caractères. Quelques mots mis bout à bout sont faciles à retenir et difficiles à deviner.",
    ),
    ("have_account", "Vous avez déjà un compte ?"),
    ("check_inbox_title", "Consultez votre messagerie"),
    (
        "signup_sent",
        "Nous avons envoyé un message à {email}. Suivez son lien pour confirmer votre adresse, puis connectez-vous.",
    ),
    ("forgot_title", "Réinitialiser le mot de passe"),
    (
        "forgot_lead",
        "Indiquez l'adresse e-mail de votre compte : nous vous enverrons un lien pour choisir un nouveau mot de passe.",
    ),
    ("send_link", "Envoyer le lien"),
    (
        "forgot_sent",
        "Si un compte existe pour {email}, nous lui avons envoyé un lien pour choisir un nouveau mot de passe. Le lien ne sert qu'une fois et expire dans {duration}.",
    ),
    ("back_to_sign_in", "Retour à la connexion"),
    ("reset_title", "Choisir un nouveau mot de passe"),
    ("reset_button", "Enregistrer le mot de passe"),
    ("reset_done_title", "Mot de passe modifié"),
    (
        "reset_done",
        "Votre mot de passe a été modifié et toutes les sessions de votre compte ont été fermées. Connectez-vous avec le nouveau mot de passe.",
    ),
    ("link_invalid_title", "Ce lien ne fonctionne pas"),
    (
        "link_invalid",
        "Il a expiré, a déjà servi, ou un lien plus récent a été envoyé. Demandez-en un nouveau.",
    ),
    ("ask_new_link", "Demander un nouveau lien"),
    ("verify_title", "Confirmer votre adresse e-mail"),
    (
        "verify_lead",
        "Confirmez qu'il s'agit bien de votre adresse pour terminer la création de votre compte.",
    ),
    ("verify_button", "Confirmer mon adresse"),
    ("verified_title", "Adresse confirmée"),
    ("verified", "Merci : votre adresse e-mail est confirmée."),
    ("confirm_email_title", "Confirmer votre nouvelle adresse"),
    (
        "confirm_email_lead",
        "Confirmez que cette nouvelle adresse sera désormais celle de votre compte.",
    ),
    ("confirm_email_button", "Confirmer la nouvelle adresse"),
    ("email_changed_title", "Adresse modifiée"),
    (
        "email_changed",
        "L'adresse e-mail de votre compte a été modifiée. Connectez-vous avec la nouvelle adresse.",
    ),
    ("signed_in_title", "Connecté"),
    ("signed_in_as", "Vous êtes connecté en tant que {email}."),
    ("sign_out", "Se déconnecter"),
    ("sign_out_title", "Se déconnecter ?"),
    ("sign_out_lead", "Déconnecter {email} sur cet appareil ?"),
    ("sign_out_client", "{client} demande à déconnecter {email}."),
    ("signed_out_title", "Déconnecté"),
    ("signed_out", "Vous êtes déconnecté."),
    ("cancel", "Annuler"),
    ("continue", "Continuer"),
    (
        "err_credentials",
        "L'adresse e-mail ou le mot de passe est incorrect.",
    ),
    (
        "err_too_many",
        "Trop de tentatives. Patientez un peu, puis réessayez.",
    ),
    ("err_disabled", "Ce compte est désactivé."),
    ("mfa_title", "Deuxième étape"),
    (
        "mfa_lead",
        "Saisissez le code à 6 chiffres de votre application d'authentification, ou l'un de vos codes de secours.",
    ),
    ("mfa_code", "Code"),
    (
        "mfa_code_help",
        "Un code de secours ne sert qu'une seule fois.",
    ),
    ("mfa_verify", "Vérifier"),
    ("mfa_start_over", "Recommencer"),
    ("step_up_title", "Confirmez votre identité"),
    (
        "step_up_lead",
        "Cette page demande un second facteur récent. Saisissez le code à 6 chiffres de votre application d'authentification, ou l'un de vos codes de secours.",
    ),
    (
        "step_up_password_lead",
        "Cette page demande une connexion récente. Saisissez votre mot de passe pour continuer.",
    ),
    (
        "step_up_no_factor",
        "Cette page demande un second facteur, et votre compte n'en a pas encore. Configurez-en un, puis revenez.",
    ),
    ("step_up_set_up", "Configurer un second facteur"),
    ("account_title", "Votre compte"),
    ("passkey_sign_in", "Se connecter avec une clé d'accès"),
    ("passkey_use", "Utiliser plutôt une clé d'accès"),
    (
        "err_passkey",
        "Cette clé d'accès n'a pas fonctionné. Réessayez, ou utilisez un autre moyen.",
    ),
    (
        "err_passkeys_unavailable",
        "Les clés d'accès ne sont pas disponibles sur ce site.",
    ),
    (
        "err_too_many_passkeys",
        "Ce compte a déjà autant de clés d'accès qu'il peut en avoir.",
    ),
    ("passkeys_title", "Clés d'accès"),
    (
        "passkeys_none",
        "Pas encore de clé d'accès. Une clé d'accès vous connecte avec votre empreinte, votre visage ou le code de l'appareil, sans mot de passe.",
    ),
    ("passkey_name", "Nom de la nouvelle clé d'accès"),
    ("passkey_name_example", "p. ex. Portable du bureau"),
    ("passkey_add", "Ajouter une clé d'accès"),
    ("passkey_remove", "Retirer"),
    ("passkey_remove_named", "Retirer la clé d'accès {name}"),
    ("factors_title", "Second facteur"),
    (
        "totp_on",
        "Une application d'authentification est configurée : la connexion demande un code de celle-ci.",
    ),
    (
        "totp_off",
        "Pas encore de second facteur. Avec une application d'authentification, un mot de passe volé ne suffit plus à ouvrir votre compte.",
    ),
    ("codes_left", "Codes de secours restants : {n}."),
    ("codes_new", "Nouveaux codes de secours"),
    ("totp_remove", "Retirer l'application d'authentification"),
    (
        "factors_recent",
        "De nouveaux codes, ou retirer un second facteur, en demandent d'abord un si vous n'en avez pas utilisé dans les 10 dernières minutes.",
    ),
    (
        "totp_set_up",
        "Configurer une application d'authentification",
    ),
    (
        "totp_setup_title",
        "Configurer une application d'authentification",
    ),
    (
        "totp_setup_lead",
        "Scannez le code QR avec votre application d'authentification, ou saisissez-y la clé. Puis entrez le code à 6 chiffres qu'elle affiche.",
    ),
    (
        "totp_qr_label",
        "Code QR de la clé, pour votre application d'authentification",
    ),
    ("totp_secret_label", "Clé :"),
    (
        "totp_open_app",
        "Ouvrir dans une application d'authentification de cet appareil",
    ),
    ("totp_first_code", "Code de l'application"),
    ("totp_confirm", "Activer"),
    ("codes_title", "Vos codes de secours"),
    (
        "codes_lead",
        "Gardez ces codes en lieu sûr : chacun vous permet d'entrer une fois si vous perdez votre téléphone. Ils ne sont affichés que maintenant.",
    ),
    ("codes_done", "Je les ai enregistrés"),
    (
        "err_no_second_factor",
        "Configurez d'abord une application d'authentification.",
    ),
    (
        "err_totp_already_enrolled",
        "Une application d'authentification est déjà configurée.",
    ),
    (
        "err_code_required",
        "Votre compte a un second facteur : saisissez un code de celui-ci.",
    ),
    ("err_invalid_code", "Ce code est faux ou a déjà servi."),
    (
        "err_mfa_expired",
        "Cette connexion a expiré. Connectez-vous à nouveau.",
    ),
    (
        "err_not_verified",
        "Confirmez d'abord votre adresse e-mail : suivez le lien que nous vous avons envoyé.",
    ),
    (
        "err_unavailable",
        "Le service est momentanément indisponible. Réessayez dans un instant.",
    ),
    ("err_failed", "Cela n'a pas fonctionné. Réessayez."),
    (
        "err_form",
        "Ce formulaire a expiré ou ne vient pas de ce site. Réessayez.",
    ),
    (
        "err_origin",
        "Cette page a été ouverte à l'adresse {origin}, mais l'adresse de ce service est {public}. Ouvrez plutôt {public}.",
    ),
    (
        "err_origin_admin",
        "Si l'on accède à ce service par {origin}, son administrateur règle TOLLGATE_PUBLIC_URL sur cette adresse (ou l'ajoute à [http] trusted_origins).",
    ),
    (
        "err_password_too_short",
        "Le mot de passe est trop court : au moins 8 caractères.",
    ),
    (
        "err_password_too_long",
        "Le mot de passe est trop long : au plus 1024 caractères.",
    ),
    (
        "err_password_too_common",
        "Ce mot de passe fait partie des plus courants. Choisissez-en un autre.",
    ),
    (
        "err_password_breached",
        "Ce mot de passe figure dans une fuite de données. Choisissez-en un autre.",
    ),
    (
        "err_password_is_email",
        "Le mot de passe ne doit pas être votre adresse e-mail.",
    ),
    (
        "err_invalid_email",
        "Indiquez une adresse e-mail comme nom@exemple.fr.",
    ),
    (
        "err_registration_closed",
        "Ici, les comptes sont créés par un administrateur.",
    ),
    ("consent_title", "Autoriser l'accès à {client} ?"),
    (
        "consent_lead",
        "Connecté en tant que {email}. {client} demande à :",
    ),
    ("consent_nothing", "savoir que vous êtes connecté"),
    ("allow", "Autoriser"),
    ("deny", "Refuser"),
    (
        "client_registered_itself",
        "Cette application s'est inscrite elle-même : personne ici n'a vérifié qui l'a faite.",
    ),
    ("consent_resource", "Pour :"),
    ("device_title", "Connecter un appareil"),
    (
        "device_lead",
        "Saisissez le code affiché par votre appareil pour lui permettre d'utiliser votre compte.",
    ),
    ("device_code_label", "Code"),
    (
        "device_code_invalid",
        "Ce code n'est pas valable ou a expiré. Vérifiez le code sur votre appareil, ou recommencez depuis celui-ci.",
    ),
    (
        "device_confirm_title",
        "Autoriser {client} sur votre appareil ?",
    ),
    (
        "device_confirm_lead",
        "Connecté en tant que {email}. L'appareil qui affiche {code} demande, en tant que {client}, à :",
    ),
    (
        "device_fine",
        "N'autorisez que si vous l'avez lancé sur votre appareil et que le code correspond.",
    ),
    ("device_allowed_title", "Appareil connecté"),
    (
        "device_allowed_text",
        "Vous pouvez revenir à votre appareil ; il continuera de lui-même.",
    ),
    ("device_denied_title", "Appareil refusé"),
    (
        "device_denied_text",
        "L'appareil n'a pas reçu l'accès à votre compte.",
    ),
    (
        "consent_fine",
        "Vous pourrez retirer cette autorisation ; l'accès de l'application prendra fin avec elle.",
    ),
    (
        "scope_openid",
        "confirmer qui vous êtes (un identifiant de votre compte, rien d'autre)",
    ),
    (
        "scope_profile",
        "voir votre nom d'utilisateur, qui est votre adresse e-mail",
    ),
    (
        "scope_email",
        "voir votre adresse e-mail et si elle est confirmée",
    ),
    (
        "scope_offline_access",
        "garder l'accès après votre déconnexion ici, jusqu'à ce que vous le retiriez",
    ),
    ("scope_roles", "voir le nom de vos rôles"),
    (
        "scope_other",
        "agir pour vous avec l'autorisation « {scope} »",
    ),
    ("link_title", "Associer votre compte {provider}"),
    (
        "link_lead",
        "Un compte existe déjà pour {email}. Saisissez son mot de passe pour y associer votre connexion {provider} ; ensuite, les deux façons vous connectent.",
    ),
    ("link_password", "Mot de passe de {email}"),
    ("link_button", "Associer les comptes"),
    ("error_title", "Un problème est survenu"),
    ("error_400", "Cette demande ne peut pas être traitée"),
    ("error_401", "Connexion requise"),
    ("error_403", "Accès refusé"),
    ("error_404", "Page introuvable"),
    (
        "error_404_text",
        "L'adresse est peut-être mal saisie, ou la page n'existe plus.",
    ),
    ("error_405", "Action non autorisée ici"),
    ("error_408", "Le délai est dépassé"),
    ("error_429", "Trop de demandes"),
    ("error_5xx", "Le service est indisponible"),
    ("error_code", "Code d'erreur"),
    ("home_link", "Aller à la page d'accueil"),
    ("continuing", "Poursuite…"),
    (
        "no_script",
        "Votre navigateur n'exécute pas de scripts : appuyez sur le bouton pour continuer.",
    ),
    ("sign_in_failed_title", "La connexion n'a pas abouti"),
    (
        "request_failed_title",
        "Cette demande ne peut pas continuer",
    ),
];

/// The languages shipped, the first the default, each in its parts.
const LANGUAGES: [(&str, [Catalogue; 3]); 2] = [
    ("en", [EN, account::EN, console::EN]),
    ("fr", [FR, account::FR, console::FR]),
];

/// The language a page is rendered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locale {
    index: usize,
}

impl Default for Locale {
    fn default() -> Self {
        Locale::ENGLISH
    }
}

impl Locale {
    pub const ENGLISH: Locale = Locale { index: 0 };

    /// The shipped language the client prefers most (`Accept-Language`, RFC 9110
    /// §12.5.4: quality values, `fr-CH` counting as `fr`), English when none fits.
    pub fn negotiate(accept_language: Option<&str>) -> Locale {
        let Some(header) = accept_language else {
            return Locale::ENGLISH;
        };
        let mut best: Option<(f32, usize)> = None;
        for (position, item) in header.split(',').enumerate().take(32) {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            if q <= 0.0 {
                continue;
            }
            let primary = tag.split('-').next().unwrap_or("");
            let Some(index) = LANGUAGES.iter().position(|(lang, _)| *lang == primary) else {
                continue;
            };
            // Higher quality wins; among equals, the one listed first.
            let key = q - position as f32 * 1e-4;
            if best.is_none_or(|(k, _)| key > k) {
                best = Some((key, index));
            }
        }
        best.map_or(Locale::ENGLISH, |(_, index)| Locale { index })
    }

    /// The language tag (`en`, `fr`), for `<html lang>`.
    pub fn lang(self) -> &'static str {
        LANGUAGES[self.index].0
    }

    /// A message, by key (the key itself when missing: a bug the tests catch).
    pub fn text(self, key: &str) -> &'static str {
        self.messages()
            .find(|(k, _)| *k == key)
            .map_or("", |(_, v)| v)
    }

    /// Every message of this language, for templates.
    pub fn messages(self) -> impl Iterator<Item = (&'static str, &'static str)> {
        LANGUAGES[self.index]
            .1
            .iter()
            .flat_map(|part| part.iter().copied())
    }

    /// Every shipped language.
    pub fn all() -> impl Iterator<Item = Locale> {
        (0..LANGUAGES.len()).map(|index| Locale { index })
    }
}

/// `text` with each `{name}` replaced by its value, in one pass over `text`: a value is
/// never read for placeholders (a client named `X {email}` stays that, and never shows
/// the signed-in person's address).
pub fn fill(text: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let value = after.find('}').and_then(|close| {
            let name = &after[..close];
            values
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v, close))
        });
        match value {
            Some((v, close)) => {
                out.push_str(v);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_not_read_for_placeholders() {
        let values = [("client", "X {email}"), ("email", "victim@example.com")];
        assert_eq!(
            fill("{client} asks to sign you out of {email}.", &values),
            "X {email} asks to sign you out of victim@example.com."
        );
        assert_eq!(fill("{unknown} {", &values), "{unknown} {");
        assert_eq!(
            fill("{email}{email}", &values),
            "victim@example.comvictim@example.com"
        );
    }

    #[test]
    fn every_language_has_every_message() {
        let keys = |l: Locale| {
            let mut k: Vec<&str> = l.messages().map(|(k, _)| k).collect();
            k.sort();
            k
        };
        for l in Locale::all() {
            assert_eq!(keys(l), keys(Locale::ENGLISH), "{}", l.lang());
            let mut unique = keys(l);
            unique.dedup();
            assert_eq!(unique.len(), keys(l).len(), "{}: a key twice", l.lang());
        }
    }

    #[test]
    fn the_preferred_shipped_language_is_chosen() {
        for (header, want) in [
            (None, "en"),
            (Some(""), "en"),
            (Some("fr"), "fr"),
            (Some("fr-CH, fr;q=0.9, en;q=0.8"), "fr"),
            (Some("en-GB,en;q=0.9,fr;q=0.8"), "en"),
            (Some("de-DE, de;q=0.9, fr;q=0.5, en;q=0.4"), "fr"),
            (Some("de, it"), "en"),
            (Some("fr;q=0, en"), "en"),
            (Some("en;q=0.5, fr;q=0.5"), "en"),
            (Some("*"), "en"),
        ] {
            assert_eq!(Locale::negotiate(header).lang(), want, "{header:?}");
        }
    }

    #[test]
    fn placeholders_are_filled() {
        let fr = Locale::negotiate(Some("fr"));
        assert_eq!(
            fill(fr.text("signed_in_as"), &[("email", "a@b.c")]),
            "Vous êtes connecté en tant que a@b.c."
        );
    }
}
