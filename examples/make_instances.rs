//! Writes copies of a real DICOM image with fresh Study, Series and SOP Instance UIDs, for
//! benchmarks and load tests: `make_instances SOURCE OUT_DIR COUNT STUDIES`.

use std::path::PathBuf;

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, source, out, count, studies] = args.as_slice() else {
        return Err("usage: make_instances SOURCE OUT_DIR COUNT STUDIES".into());
    };
    let (count, studies): (usize, usize) = (count.parse()?, studies.parse()?);
    let out = PathBuf::from(out);
    std::fs::create_dir_all(&out)?;

    let per_study = count.div_ceil(studies);
    for study in 0..studies {
        let study_uid = argus::uid::generate("2.25");
        let series_uid = argus::uid::generate("2.25");
        for i in 0..per_study.min(count - study * per_study) {
            let mut obj = dicom_object::open_file(source)?;
            let sop = argus::uid::generate("2.25");
            let mut put = |tag, vr, value: &str| {
                obj.put(DataElement::new(tag, vr, PrimitiveValue::from(value)));
            };
            put(tags::STUDY_INSTANCE_UID, VR::UI, &study_uid);
            put(tags::SERIES_INSTANCE_UID, VR::UI, &series_uid);
            put(tags::SOP_INSTANCE_UID, VR::UI, &sop);
            put(tags::INSTANCE_NUMBER, VR::IS, &(i + 1).to_string());
            obj.meta_mut().media_storage_sop_instance_uid = sop;
            obj.meta_mut().update_information_group_length();
            obj.write_to_file(out.join(format!("s{study:02}_{i:04}.dcm")))?;
        }
    }
    Ok(())
}
