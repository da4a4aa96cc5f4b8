//! Arbitrary bytes as an AdmissionReview body: [`slipway_webhook::decode`] must answer every
//! input with `Ok` or a [`slipway_webhook::DecodeError`], never panic. A decoded request also
//! goes through what the handlers do before they need a cluster: the object converted to an
//! `App` and the answer serialized back.
#![no_main]

use kube::core::admission::AdmissionResponse;
use libfuzzer_sys::fuzz_target;
use slipway_crds::App;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = slipway_webhook::decode(data) else { return };
    if let Some(object) = request.object.as_ref() {
        let _ = serde_json::to_value(object).and_then(serde_json::from_value::<App>);
    }
    let answer = AdmissionResponse::from(&request).deny("fuzz").into_review();
    serde_json::to_vec(&answer).expect("an AdmissionReview answer serializes");
});
